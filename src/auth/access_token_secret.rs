use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::TokenHash;

/// Every user access token starts with this, so that secret scanners and people recognise a
/// leaked one.
pub const ACCESS_TOKEN_PREFIX: &str = "idat_";
/// Base62 keeps the token one "word" for double-click selection, unlike base64's `-` and `_`.
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 43 base62 characters carry 256 random bits (43 × log2 62 ≈ 256.0).
const BODY_LEN: usize = 43;
/// A CRC32 of the body in 6 base62 characters (62^6 > 2^32).
const CHECKSUM_LEN: usize = 6;
/// Characters of the body shown in a hint.
const HINT_TAIL: usize = 4;

/// A user access token secret: `idat_` + 43 random base62 characters + a 6-character CRC32
/// checksum, as GitHub's tokens are built. The checksum lets a mistyped or truncated token be
/// refused before any database query, and lets scanners tell real tokens from look-alikes.
pub struct AccessTokenSecret(SecretString);

impl std::fmt::Debug for AccessTokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokenSecret(<redacted>)")
    }
}

fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

impl AccessTokenSecret {
    /// Mints a new secret from the operating system's random generator.
    pub fn mint() -> Self {
        let mut rng = rand::rngs::OsRng;
        let body: String = (0..BODY_LEN)
            .map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char)
            .collect();
        let sum = checksum(&body);
        Self(SecretString::from(format!("{ACCESS_TOKEN_PREFIX}{body}{sum}")))
    }

    /// Whether a credential claims to be an access token (by its prefix), so that callers can route
    /// it; [`Self::parse`] decides whether it is well formed.
    pub fn looks_like(raw: &str) -> bool {
        raw.starts_with(ACCESS_TOKEN_PREFIX)
    }

    /// Accepts only a well-formed token whose checksum matches; no database is needed to refuse one.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(ACCESS_TOKEN_PREFIX)?;
        if rest.len() != BODY_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let (body, sum) = rest.split_at(BODY_LEN);
        (checksum(body) == sum).then(|| Self(SecretString::from(raw.to_owned())))
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.expose_secret().as_bytes()).into())
    }

    /// A non-secret reminder of which token this is: the prefix and the body's last characters.
    pub fn hint(&self) -> String {
        let secret = self.0.expose_secret();
        let body_end = secret.len() - CHECKSUM_LEN;
        format!("{ACCESS_TOKEN_PREFIX}…{}", &secret[body_end - HINT_TAIL..body_end])
    }

    /// The secret itself, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_carry_a_valid_checksum() {
        let token = AccessTokenSecret::mint();
        assert!(token.expose().starts_with(ACCESS_TOKEN_PREFIX));
        assert_eq!(
            token.expose().len(),
            ACCESS_TOKEN_PREFIX.len() + BODY_LEN + CHECKSUM_LEN
        );
        let parsed = AccessTokenSecret::parse(token.expose()).expect("parses");
        assert_eq!(parsed.hash(), token.hash());
        assert!(
            !token.hint().contains(&token.expose()[5..40]),
            "the hint is not the secret"
        );
    }

    #[test]
    fn any_single_changed_character_is_refused() {
        let token = AccessTokenSecret::mint();
        let raw = token.expose().as_bytes().to_vec();
        for i in ACCESS_TOKEN_PREFIX.len()..raw.len() {
            let mut changed = raw.clone();
            changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(
                AccessTokenSecret::parse(&changed).is_none(),
                "a change at {i} is caught"
            );
        }
        assert!(AccessTokenSecret::parse(&token.expose()[..raw.len() - 1]).is_none());
        assert!(AccessTokenSecret::parse("idat_").is_none());
    }
}
