//! The AgileApps XML shapes, read and written with quick-xml and serde.
//!
//! Requests are read only when they are small (the body limit), have `<platform>` as their root,
//! and carry no document type declaration: no DOCTYPE means no entity can be declared, so neither
//! external entities nor entity expansion ("billion laughs") can happen; an undeclared entity is
//! refused as malformed by the reader.

use quick_xml::Reader;
use quick_xml::events::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Why a request body could not be read as AgileApps XML.
#[derive(Debug)]
pub enum XmlRefusal {
    /// Not well-formed, not `<platform>` at the root, or not the request's shape.
    Malformed(String),
    /// A document type declaration, the door to entity attacks.
    Doctype,
}

/// Reads a `<platform>` request body into `T`.
pub fn read<T: DeserializeOwned>(body: &[u8]) -> Result<T, XmlRefusal> {
    let text = std::str::from_utf8(body).map_err(|_| XmlRefusal::Malformed("the body is not UTF-8".to_owned()))?;
    check_prolog(text)?;
    quick_xml::de::from_str(text).map_err(|e| XmlRefusal::Malformed(e.to_string()))
}

/// Walks the document once, before any deserialisation: refuses a DOCTYPE anywhere and a root
/// other than `<platform>`, and checks that the document is well-formed.
fn check_prolog(text: &str) -> Result<(), XmlRefusal> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut saw_root = false;
    loop {
        let event = reader.read_event().map_err(|e| XmlRefusal::Malformed(e.to_string()))?;
        match &event {
            Event::DocType(_) => return Err(XmlRefusal::Doctype),
            Event::Start(start) | Event::Empty(start) if depth == 0 => {
                if saw_root {
                    return Err(XmlRefusal::Malformed("more than one root element".to_owned()));
                }
                if start.name().as_ref() != "platform" {
                    return Err(XmlRefusal::Malformed("the root element must be <platform>".to_owned()));
                }
                saw_root = true;
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::GeneralRef(name) => {
                // Only the five predefined entities and character references are known.
                let name: &str = name;
                let predefined = matches!(name, "lt" | "gt" | "amp" | "apos" | "quot") || name.starts_with('#');
                if !predefined {
                    return Err(XmlRefusal::Malformed(format!("unknown entity &{name};")));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if saw_root {
        Ok(())
    } else {
        Err(XmlRefusal::Malformed("no <platform> element".to_owned()))
    }
}

/// Writes a `<platform>` answer.
pub fn write<T: Serialize>(value: &T) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    // Serialising our own plain structs cannot fail; an empty document would be the worst case.
    if let Err(e) = quick_xml::se::to_writer(&mut out, value) {
        tracing::error!(error = %e, "writing an XML answer");
    }
    out
}

/// The body of the three login resources: `client_tenant_id` for customer support,
/// `proxy_user_id` for a proxy login.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub login: LoginFields,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginFields {
    #[serde(rename = "userName", default)]
    pub user_name: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub client_tenant_id: String,
    #[serde(default)]
    pub proxy_user_id: String,
}

/// The body of the password change (the "Update Password Request" a client sends when the login
/// answers `isForceChangePassword`).
#[derive(Debug, Deserialize)]
pub struct PasswordRequest {
    pub user: PasswordFields,
}

#[derive(Debug, Default, Deserialize)]
pub struct PasswordFields {
    #[serde(rename = "userName", default)]
    pub user_name: String,
    #[serde(rename = "oldPassword", default)]
    pub old_password: String,
    #[serde(rename = "newPassword", default)]
    pub new_password: String,
}

/// `<message><code>…</code><description>…</description></message>`; `reason` (the gRPC
/// `ErrorInfo.reason`) on errors only.
#[derive(Debug, Serialize)]
pub struct Message {
    pub code: u32,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl Message {
    pub fn success() -> Self {
        Self {
            code: 0,
            description: "Success".to_owned(),
            reason: None,
        }
    }
}

/// An answer that is only a message (logout, password change, every error).
#[derive(Debug, Serialize)]
#[serde(rename = "platform")]
pub struct MessageReply {
    pub message: Message,
}

/// The answer of the login resources and of switching back, field for field as AgileApps has it.
#[derive(Debug, Serialize)]
#[serde(rename = "platform")]
pub struct LoginReply {
    pub login: LoginDetails,
    pub message: Message,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginDetails {
    pub user_id: String,
    pub email: String,
    pub user_name: String,
    pub first_name: String,
    pub is_force_change_password: bool,
    pub last_name: String,
    pub organization_name: String,
    pub organization_id: String,
    pub time_zone: String,
    pub employee_number: String,
    /// The session token: AgileApps clients send it back as their credential.
    pub session_id: String,
    /// `name=value` of the session cookie, for clients that build their own `Cookie` header.
    pub cookie_string: String,
    pub user_locale: String,
    pub user_date_format: String,
}

/// The answer of `user/isSessionValid`.
#[derive(Debug, Serialize)]
#[serde(rename = "platform")]
pub struct SessionValidReply {
    pub user: SessionValid,
    pub message: Message,
}

#[derive(Debug, Serialize)]
pub struct SessionValid {
    pub is_session_valid: bool,
}

/// The answer of `user/info`: the user record.
#[derive(Debug, Serialize)]
#[serde(rename = "platform")]
pub struct UserInfoReply {
    pub user: UserInfo,
    pub message: Message,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    pub user_id: String,
    pub email: String,
    pub user_name: String,
    pub first_name: String,
    pub last_name: String,
    pub is_force_change_password: bool,
    pub organization_name: String,
    pub organization_id: String,
    pub time_zone: String,
    pub employee_number: String,
    pub user_locale: String,
    pub user_date_format: String,
}
