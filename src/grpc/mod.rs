//! The gRPC layer. Each service parses its request into core calls, and converts the answer and
//! the error back; no rule lives here.

mod access_token;
mod admin;
mod convert;
mod decode_errors;
mod drain;
pub mod error;
pub mod field_mask;
mod identity_providers;
mod in_flight_limit;
mod login;
mod request;
mod rpc_telemetry;
mod session;

use tonic::service::Routes;

use crate::core::Identity;

pub use decode_errors::DecodeErrorLayer;
pub use drain::{Cuttable, DrainDeadline, DrainLayer};
pub use in_flight_limit::InFlightLimitLayer;
pub use rpc_telemetry::{REQUEST_ID, RpcTelemetryLayer};

/// Code generated from `proto/identity/v1/`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("identity.v1");
}

/// The encoded descriptors of the contract (with its imports), served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/identity_v1_descriptor.bin"));

/// The fully qualified names of the services, as health checks name them.
pub const SERVICE_NAMES: [&str; 4] = [
    "identity.v1.LoginService",
    "identity.v1.SessionService",
    "identity.v1.AccessTokenService",
    "identity.v1.AdminService",
];

/// The four identity services over one core, each refusing request messages over `max_request_bytes`.
pub fn routes(identity: Identity, max_request_bytes: usize) -> Routes {
    use pb::access_token_service_server::AccessTokenServiceServer;
    use pb::admin_service_server::AdminServiceServer;
    use pb::login_service_server::LoginServiceServer;
    use pb::session_service_server::SessionServiceServer;

    Routes::new(
        LoginServiceServer::new(login::LoginApi::new(identity.clone())).max_decoding_message_size(max_request_bytes),
    )
    .add_service(
        SessionServiceServer::new(session::SessionApi::new(identity.clone()))
            .max_decoding_message_size(max_request_bytes),
    )
    .add_service(
        AccessTokenServiceServer::new(access_token::AccessTokenApi::new(identity.clone()))
            .max_decoding_message_size(max_request_bytes),
    )
    .add_service(AdminServiceServer::new(admin::AdminApi::new(identity)).max_decoding_message_size(max_request_bytes))
}
