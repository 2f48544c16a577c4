use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Every session token starts with this, so that a leaked one is recognisable (by people and by
/// secret scanners) and a credential of another kind is turned away without a database query.
pub const SESSION_TOKEN_PREFIX: &str = "idsess_";
/// 32 random bytes: 256 bits.
const TOKEN_BYTES: usize = 32;
/// Base64url without padding of 32 bytes.
const ENCODED_LEN: usize = 43;

/// The SHA-256 of a token: the only form in which a token is stored. A plain hash suffices (no
/// salt, no slow hash) because the token has 256 random bits: there is nothing to guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A session token: the bearer secret handed out once at login.
pub struct SessionToken(SecretString);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl SessionToken {
    /// Mints a new token from the operating system's random generator.
    pub fn mint() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(SecretString::from(format!(
            "{SESSION_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    /// Accepts a string only if it has the shape of a token this server mints; anything else is
    /// refused before it costs a database query.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(SESSION_TOKEN_PREFIX)?;
        let well_formed = body.len() == ENCODED_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(body).is_ok_and(|b| b.len() == TOKEN_BYTES);
        well_formed.then(|| Self(SecretString::from(raw.to_owned())))
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.expose_secret().as_bytes()).into())
    }

    /// The token itself, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_hash_the_same() {
        let token = SessionToken::mint();
        assert!(token.expose().starts_with(SESSION_TOKEN_PREFIX));
        let parsed = SessionToken::parse(token.expose()).expect("a minted token parses");
        assert_eq!(parsed.hash(), token.hash());
        assert_ne!(SessionToken::mint().hash(), token.hash());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let token = SessionToken::mint();
        let raw = token.expose();
        assert!(SessionToken::parse(&raw[1..]).is_none());
        assert!(SessionToken::parse(&format!("{raw}x")).is_none());
        assert!(SessionToken::parse(&raw.replace(SESSION_TOKEN_PREFIX, "other_")).is_none());
        assert!(SessionToken::parse(&format!("{}{}", &raw[..raw.len() - 1], '!')).is_none());
        assert!(SessionToken::parse("").is_none());
    }
}
