//! The OpenAPI 3 document of the JSON routes, generated from the contract's descriptors when it
//! is first asked for: one path per call, one schema per message in the protobuf JSON mapping.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Value, json};

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::RestState;
use super::json::{Catalogue, route_of};

/// `GET /openapi.json`.
pub async fn serve(State(state): State<RestState>) -> Response {
    match state.json.openapi() {
        Ok(document) => ([(http::header::CONTENT_TYPE, "application/json")], document.to_owned()).into_response(),
        Err(_) => http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The document, as JSON text.
pub fn document(catalogue: &Catalogue) -> String {
    let mut schemas = Schemas::default();
    let mut paths = serde_json::Map::new();
    for method in catalogue.methods() {
        let service = method.parent_service();
        let input = schemas.reference(&method.input());
        let output = schemas.reference(&method.output());
        paths.insert(
            route_of(method),
            json!({
                "post": {
                    "operationId": format!("{}.{}", service.name(), method.name()),
                    "tags": [service.name()],
                    "summary": format!("{} (gRPC {})", method.name(), method.full_name()),
                    "requestBody": {
                        "required": true,
                        "content": { "application/json": { "schema": input } }
                    },
                    "responses": {
                        "200": {
                            "description": format!("{} in the protobuf JSON mapping", method.output().full_name()),
                            "content": { "application/json": { "schema": output } }
                        },
                        "default": {
                            "description": "The error, as google.rpc.Status with the gRPC error details",
                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/google.rpc.Status" } } }
                        }
                    }
                }
            }),
        );
    }
    if let Some(status) = catalogue.status_message() {
        schemas.reference(&status);
    }
    let document = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "identityd JSON API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every gRPC call of identityd as POST /json/<service>/<method>, its request and answer in the protobuf JSON mapping. Calls that need a caller take `Authorization: Bearer <session token or user access token>` (or the session cookie)."
        },
        "paths": paths,
        "components": {
            "schemas": schemas.done,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "security": [ {}, { "bearer": [] } ]
    });
    document.to_string()
}

/// The schemas written so far, and the messages still to write.
#[derive(Default)]
struct Schemas {
    done: BTreeMap<String, Value>,
    seen: BTreeSet<String>,
}

impl Schemas {
    /// A reference to `message`'s schema, writing it (and those it needs) when first met.
    fn reference(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message.full_name()) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if self.seen.insert(name.clone()) {
            let mut properties = serde_json::Map::new();
            for field in message.fields() {
                let schema = self.field(&field);
                properties.insert(field.json_name().to_owned(), schema);
            }
            let schema = if name == "google.protobuf.Any" {
                json!({ "type": "object", "properties": { "@type": { "type": "string" } }, "additionalProperties": true })
            } else {
                json!({ "type": "object", "properties": properties })
            };
            self.done.insert(name.clone(), schema);
        }
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    fn field(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return json!({ "type": "object" });
            };
            let value = entry.map_entry_value_field();
            return json!({ "type": "object", "additionalProperties": self.single(&value.kind()) });
        }
        let single = self.single(&field.kind());
        if field.cardinality() == Cardinality::Repeated {
            json!({ "type": "array", "items": single })
        } else {
            single
        }
    }

    fn single(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({ "type": "number" }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({ "type": "integer", "format": "int32" }),
            Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "minimum": 0 }),
            // The JSON mapping writes 64-bit integers as strings.
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
                json!({ "type": "string", "format": "int64" })
            }
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "format": "byte" }),
            Kind::Enum(e) => {
                json!({ "type": "string", "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>() })
            }
            Kind::Message(m) => self.reference(m),
        }
    }
}

/// The well-known types the JSON mapping writes as plain values.
fn well_known(full_name: &str) -> Option<Value> {
    Some(match full_name {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => json!({ "type": "string", "example": "1.5s" }),
        "google.protobuf.Empty" => json!({ "type": "object" }),
        "google.protobuf.FieldMask" => json!({ "type": "string" }),
        "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": true }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.StringValue" => json!({ "type": "string", "nullable": true }),
        "google.protobuf.BoolValue" => json!({ "type": "boolean", "nullable": true }),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({ "type": "integer", "nullable": true }),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({ "type": "string", "format": "int64", "nullable": true })
        }
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => json!({ "type": "number", "nullable": true }),
        _ => return None,
    })
}
