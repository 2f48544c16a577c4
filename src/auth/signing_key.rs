//! Session-JWT signing keys: ECDSA P-256 (ES256) key pairs generated here, in Rust.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use secrecy::SecretBox;

/// A new key pair: the private key as PKCS#8 DER (secret), and the public point as the JWK
/// coordinates `x` and `y` (base64url, RFC 7518 §6.2.1).
pub struct GeneratedSigningKey {
    pub private_pkcs8: SecretBox<Vec<u8>>,
    pub public_x: String,
    pub public_y: String,
}

impl GeneratedSigningKey {
    /// Generates a P-256 key pair from the operating system's random source.
    pub fn generate() -> Self {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret.to_pkcs8_der().expect("a P-256 key always encodes as PKCS#8");
        let point = secret.public_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| URL_SAFE_NO_PAD.encode(c.expect("an uncompressed point"));
        Self {
            private_pkcs8: SecretBox::new(Box::new(der.as_bytes().to_vec())),
            public_x: coordinate(point.x()),
            public_y: coordinate(point.y()),
        }
    }
}
