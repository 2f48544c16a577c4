//! What a new session records about its client, so that a person can recognise it later ("Firefox
//! on my laptop"). Only three short fields are kept, never raw headers: the user-agent and the
//! device name are client-chosen text, so each is cut to a bounded length and stripped of control
//! and format characters that could disguise it in a list or a log line.

use super::RequestMeta;
use crate::domain::is_control_or_format;
use crate::store::SessionDetails;

/// The most characters of a client's `user-agent` kept; longer ones are cut.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// The most characters of a peer address kept (an IPv6 address with zone and port fits).
const MAX_PEER_CHARS: usize = 64;

/// The details of a session opened by the request `meta` describes.
pub(crate) fn session_details(meta: &RequestMeta) -> SessionDetails {
    SessionDetails {
        user_agent: meta
            .user_agent
            .as_deref()
            .and_then(|ua| bounded(ua, MAX_USER_AGENT_CHARS)),
        peer_address: meta.peer.as_deref().and_then(|p| bounded(p, MAX_PEER_CHARS)),
        device_name: meta.device_name.clone(),
    }
}

/// `text` without control and format characters, cut to `max` characters; `None` when nothing is
/// left.
fn bounded(text: &str, max: usize) -> Option<String> {
    let kept: String = text.chars().filter(|c| !is_control_or_format(*c)).take(max).collect();
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_user_agent_is_cut_and_stripped() {
        let meta = RequestMeta {
            peer: Some("127.0.0.1:5000".into()),
            user_agent: Some(format!("Mozilla\u{200B}/5.0 {}", "x".repeat(1000))),
            device_name: None,
        };
        let details = session_details(&meta);
        let ua = details.user_agent.unwrap();
        assert_eq!(ua.chars().count(), MAX_USER_AGENT_CHARS);
        assert!(ua.starts_with("Mozilla/5.0 x"));
        assert_eq!(details.peer_address.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(session_details(&RequestMeta::default()), SessionDetails::default());
    }
}
