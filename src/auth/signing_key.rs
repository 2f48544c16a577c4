//! Session-JWT signing keys: ECDSA P-256 (ES256) key pairs generated here, in Rust, and the
//! signer that uses one.

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

/// Makes ES256 signatures (ECDSA P-256 with SHA-256) with one private key, read once.
///
/// Every login signs a session JWT, so this is on the login path: ring's P-256 (assembly, with a
/// precomputed table for the base point) signs in a fraction of the time of the pure-Rust
/// implementation, and the key is parsed (its public point derived and checked) once per key set
/// rather than once per JWT.
pub struct Es256Signer {
    pair: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

/// A private key that is not a P-256 key in PKCS#8 DER.
#[derive(Debug, thiserror::Error)]
#[error("not a P-256 private key in PKCS#8 DER: {0}")]
pub struct InvalidSigningKey(String);

/// The random source failed while signing.
#[derive(Debug, thiserror::Error)]
#[error("the random source failed while signing")]
pub struct SigningFailed;

impl Es256Signer {
    /// Reads a private key as [`GeneratedSigningKey::private_pkcs8`] holds it.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, InvalidSigningKey> {
        let rng = ring::rand::SystemRandom::new();
        let pair =
            ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                .map_err(|e| InvalidSigningKey(e.to_string()))?;
        Ok(Self { pair, rng })
    }

    /// The JWS signature of `message`: `r` and `s`, 32 bytes each (RFC 7518 §3.4).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningFailed> {
        let signature = self.pair.sign(&self.rng, message).map_err(|_| SigningFailed)?;
        Ok(signature.as_ref().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use secrecy::ExposeSecret;

    fn verifying_key(key: &GeneratedSigningKey) -> p256::ecdsa::VerifyingKey {
        let coordinate = |c: &str| URL_SAFE_NO_PAD.decode(c).unwrap();
        let point = p256::EncodedPoint::from_affine_coordinates(
            coordinate(&key.public_x).as_slice().into(),
            coordinate(&key.public_y).as_slice().into(),
            false,
        );
        p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap()
    }

    #[test]
    fn a_generated_key_signs_what_its_published_point_verifies() {
        let key = GeneratedSigningKey::generate();
        let signer = Es256Signer::from_pkcs8(key.private_pkcs8.expose_secret()).unwrap();
        let signature = signer.sign(b"header.claims").unwrap();
        assert_eq!(signature.len(), 64);
        let signature = p256::ecdsa::Signature::from_slice(&signature).unwrap();
        let public = verifying_key(&key);
        assert!(public.verify(b"header.claims", &signature).is_ok());
        assert!(public.verify(b"header.claimz", &signature).is_err());
        // Another key's point does not verify it.
        assert!(
            verifying_key(&GeneratedSigningKey::generate())
                .verify(b"header.claims", &signature)
                .is_err()
        );
    }

    #[test]
    fn what_is_not_a_p256_pkcs8_key_is_refused() {
        assert!(Es256Signer::from_pkcs8(b"not a key").is_err());
        let mut der = GeneratedSigningKey::generate().private_pkcs8.expose_secret().clone();
        let last = der.len() - 1;
        der[last] ^= 1; // the public point no longer matches the private scalar
        assert!(Es256Signer::from_pkcs8(&der).is_err());
    }
}
