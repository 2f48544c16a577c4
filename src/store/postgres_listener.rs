//! The Postgres [`RevocationFeed`]: `LISTEN` on a dedicated connection. It must reach Postgres
//! directly: a pooler in transaction mode (pgbouncer) hands each transaction to any server
//! connection, and a `LISTEN` does not outlive its transaction there.

use anyhow::Context;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::revocation_notices::{CHANNEL, RevocationFeed, RevocationNotice};
use super::{StoreError, StoreResult};

/// Listens for pushed revocations on one connection of its own.
pub struct PgRevocationFeed {
    options: PgConnectOptions,
    listener: Option<PgListener>,
}

impl PgRevocationFeed {
    /// A feed that will connect to `url` when it first subscribes.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .context("the database listen URL is not a valid postgres:// URL")?;
        Ok(Self {
            options,
            listener: None,
        })
    }
}

#[async_trait]
impl RevocationFeed for PgRevocationFeed {
    async fn subscribe(&mut self) -> StoreResult<()> {
        self.listener = None;
        // A pool of one, only to open the connection: the listener owns it from then on.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy_with(self.options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        // A lost connection is reported, not quietly replaced: notices may have been missed.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        self.listener = Some(listener);
        Ok(())
    }

    async fn next(&mut self) -> StoreResult<Vec<RevocationNotice>> {
        let Some(listener) = self.listener.as_mut() else {
            return Err(StoreError::Other(anyhow::anyhow!("not subscribed")));
        };
        // try_recv, not recv: recv would reconnect by itself and hide the notices lost meanwhile.
        let first = match listener.try_recv().await {
            Ok(Some(notification)) => notification,
            Ok(None) => {
                self.listener = None;
                return Err(StoreError::Other(anyhow::anyhow!("the listening connection was lost")));
            }
            Err(e) => {
                self.listener = None;
                return Err(e.into());
            }
        };
        let mut notices = vec![RevocationNotice::parse(first.payload())];
        while let Some(more) = listener.next_buffered() {
            notices.push(RevocationNotice::parse(more.payload()));
        }
        Ok(notices)
    }
}
