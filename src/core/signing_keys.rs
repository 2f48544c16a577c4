//! The keys that sign session JWTs, and their rotation, driven by the core's clock.
//!
//! Every key lives by three times fixed when it is made ([`SigningKeyRecord`]): it is published in
//! the JWKS from its creation, signs from `activate_time` to `retire_time`, and stays published
//! until `remove_time`. The rules:
//!
//! - **Publish before use.** The next key is made `publish_ahead` before the current one retires,
//!   and activates exactly when it does, so a verifier that refreshes its copy of the JWKS at least
//!   that often knows a key before any JWT it signs. (At the very first start there is no current
//!   key to overlap with: the first key signs at once.)
//! - **Keep after retire.** A retired key stays published for the JWT lifetime plus `publish_ahead`,
//!   so every JWT it signed can be verified until it expires.
//!
//! Any instance may make the next key; the store keeps one per activation time. Each instance
//! reads the keys again at the next time one of them changes state, and at least every minute of
//! the clock, so that it sees keys another instance made long before they sign.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::DecodingKey;
use secrecy::ExposeSecret;

use super::audit::{Audit, RequestMeta};
use super::{Error, Result};
use crate::auth::{Es256Signer, GeneratedSigningKey, KeyEncryptionKey};
use crate::store::{SigningKeyRecord, Store, StoreError};

/// How often the keys are read again at the latest, to see keys other instances made. It must be
/// well under `publish_ahead`.
const RELOAD_EVERY: Duration = Duration::seconds(60);

/// When keys are made, sign and are dropped.
#[derive(Debug, Clone, Copy)]
pub struct KeyRotation {
    /// How long each key signs.
    pub signing_period: Duration,
    /// How long before it signs a key is published.
    pub publish_ahead: Duration,
    /// How long after it retires a key stays published.
    pub keep_after_retire: Duration,
}

/// The key that signs now.
pub(crate) struct ActiveKey {
    pub key_id: String,
    pub signer: Es256Signer,
}

/// A published key: what the JWKS shows and what verifies.
pub(crate) struct PublishedKey {
    pub key_id: String,
    pub x: String,
    pub y: String,
    pub key: DecodingKey,
}

/// The keys as read at one time.
pub(crate) struct Keyset {
    pub active: ActiveKey,
    /// Oldest activation first.
    pub published: Vec<PublishedKey>,
    /// When this reading is stale: the next change of state of a key, or a minute after reading.
    refresh_at: DateTime<Utc>,
}

impl Keyset {
    pub(crate) fn published(&self, key_id: &str) -> Option<&PublishedKey> {
        self.published.iter().find(|k| k.key_id == key_id)
    }
}

/// The signing keys of the service, read from the store and kept in memory between changes.
pub(crate) struct SigningKeys {
    kek: KeyEncryptionKey,
    rotation: KeyRotation,
    loaded: RwLock<Option<Arc<Keyset>>>,
    /// One reader of the store at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl SigningKeys {
    pub(crate) fn new(kek: KeyEncryptionKey, rotation: KeyRotation) -> Self {
        Self {
            kek,
            rotation,
            loaded: RwLock::new(None),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self, now: DateTime<Utc>) -> Option<Arc<Keyset>> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.as_ref().filter(|k| now < k.refresh_at).cloned()
    }

    /// The keys in force at `now`, making or dropping keys as the rotation says.
    pub(crate) async fn at(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<Arc<Keyset>> {
        if let Some(keys) = self.fresh(now) {
            return Ok(keys);
        }
        let _one = self.reloading.lock().await;
        if let Some(keys) = self.fresh(now) {
            return Ok(keys); // read by the call we waited for
        }
        let keys = Arc::new(self.load(store, now).await?);
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Some(keys.clone());
        Ok(keys)
    }

    async fn load(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<Keyset> {
        let removed = store.delete_removed_signing_keys(now).await?;
        if removed > 0 {
            tracing::info!(removed, "removed retired session-JWT signing keys from the key set");
        }
        let mut records = store.list_signing_keys().await?;
        if let Some(times) = next_key(&records, now, &self.rotation) {
            let record = self.make_key(times, now);
            let audit = Audit::new("signing_key.created", now, &RequestMeta::default())
                .detail("key_id", &record.key_id)
                .detail("activate_time", record.activate_time.to_rfc3339())
                .build();
            match store.insert_signing_key(&record, &audit).await {
                Ok(()) => {
                    tracing::info!(key_id = %record.key_id, activate_time = %record.activate_time, "made a session-JWT signing key")
                }
                // Another instance made the key for that time first: use theirs.
                Err(StoreError::UniqueViolation { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            records = store.list_signing_keys().await?;
        }
        self.keyset(&records, now)
    }

    fn make_key(&self, times: KeyTimes, now: DateTime<Utc>) -> SigningKeyRecord {
        let generated = GeneratedSigningKey::generate();
        let key_id = uuid::Uuid::now_v7().simple().to_string();
        SigningKeyRecord {
            private_key_sealed: self
                .kek
                .seal(generated.private_pkcs8.expose_secret(), key_id.as_bytes()),
            key_id,
            public_x: generated.public_x,
            public_y: generated.public_y,
            create_time: now.min(times.activate),
            activate_time: times.activate,
            retire_time: times.retire,
            remove_time: times.remove,
        }
    }

    fn keyset(&self, records: &[SigningKeyRecord], now: DateTime<Utc>) -> Result<Keyset> {
        let live: Vec<_> = records.iter().filter(|k| now < k.remove_time).collect();
        let active = current(records, now)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("no session-JWT signing key is active after making one")))?;
        let private = self
            .kek
            .open(&active.private_key_sealed, active.key_id.as_bytes())
            .map_err(|e| {
                Error::Internal(anyhow::Error::new(e).context(format!(
                    "opening session-JWT signing key {}: is the key-encryption key the one the keys were sealed with?",
                    active.key_id
                )))
            })?;
        let signer = Es256Signer::from_pkcs8(private.expose_secret()).map_err(|e| {
            Error::Internal(anyhow::Error::new(e).context(format!("reading session-JWT signing key {}", active.key_id)))
        })?;
        let mut published = Vec::with_capacity(live.len());
        for k in &live {
            let key = DecodingKey::from_ec_components(&k.public_x, &k.public_y)
                .map_err(|e| Error::Internal(anyhow::Error::new(e).context(format!("public key {}", k.key_id))))?;
            published.push(PublishedKey {
                key_id: k.key_id.clone(),
                x: k.public_x.clone(),
                y: k.public_y.clone(),
                key,
            });
        }
        let next_rotation = active.retire_time - self.rotation.publish_ahead;
        let refresh_at = live
            .iter()
            .flat_map(|k| [k.activate_time, k.retire_time, k.remove_time])
            .chain([next_rotation])
            .filter(|t| *t > now)
            .fold(now + RELOAD_EVERY, DateTime::min);
        Ok(Keyset {
            active: ActiveKey {
                key_id: active.key_id.clone(),
                signer,
            },
            published,
            refresh_at,
        })
    }
}

/// The times of a key to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyTimes {
    activate: DateTime<Utc>,
    retire: DateTime<Utc>,
    remove: DateTime<Utc>,
}

/// The key that signs at `now`: of those active then, the latest activated.
fn current(records: &[SigningKeyRecord], now: DateTime<Utc>) -> Option<&SigningKeyRecord> {
    records
        .iter()
        .filter(|k| k.activate_time <= now && now < k.retire_time)
        .max_by(|a, b| (a.activate_time, &a.key_id).cmp(&(b.activate_time, &b.key_id)))
}

/// The key the rotation says to make at `now`, if any: one that signs at once when none signs
/// now, or the successor of the current key once it is within `publish_ahead` of retiring.
fn next_key(records: &[SigningKeyRecord], now: DateTime<Utc>, rotation: &KeyRotation) -> Option<KeyTimes> {
    let times = |activate: DateTime<Utc>| {
        let retire = activate + rotation.signing_period;
        KeyTimes {
            activate,
            retire,
            remove: retire + rotation.keep_after_retire,
        }
    };
    let Some(current) = current(records, now) else {
        return Some(times(now));
    };
    let has_successor = records.iter().any(|k| k.activate_time > current.activate_time);
    (!has_successor && now >= current.retire_time - rotation.publish_ahead).then(|| times(current.retire_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation() -> KeyRotation {
        KeyRotation {
            signing_period: Duration::days(7),
            publish_ahead: Duration::hours(1),
            keep_after_retire: Duration::minutes(70),
        }
    }

    fn record(activate: DateTime<Utc>, r: &KeyRotation) -> SigningKeyRecord {
        SigningKeyRecord {
            key_id: activate.timestamp().to_string(),
            private_key_sealed: vec![],
            public_x: String::new(),
            public_y: String::new(),
            create_time: activate - r.publish_ahead,
            activate_time: activate,
            retire_time: activate + r.signing_period,
            remove_time: activate + r.signing_period + r.keep_after_retire,
        }
    }

    #[test]
    fn the_first_key_signs_at_once() {
        let now = Utc::now();
        let times = next_key(&[], now, &rotation()).unwrap();
        assert_eq!(times.activate, now);
        assert_eq!(times.retire, now + Duration::days(7));
    }

    #[test]
    fn the_next_key_is_made_ahead_and_activates_when_the_current_retires() {
        let r = rotation();
        let start = Utc::now();
        let first = record(start, &r);
        let before = first.retire_time - r.publish_ahead - Duration::seconds(1);
        assert_eq!(next_key(std::slice::from_ref(&first), before, &r), None);
        let ahead = first.retire_time - r.publish_ahead;
        let next = next_key(std::slice::from_ref(&first), ahead, &r).unwrap();
        assert_eq!(next.activate, first.retire_time);
        // Once made, no further key until the new one nears its own retirement.
        let second = record(next.activate, &r);
        assert_eq!(next_key(&[first.clone(), second.clone()], ahead, &r), None);
        assert_eq!(
            current(&[first.clone(), second.clone()], ahead).unwrap().key_id,
            first.key_id
        );
        assert_eq!(
            current(&[first, second.clone()], next.activate).unwrap().key_id,
            second.key_id
        );
    }
}
