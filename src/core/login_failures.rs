//! Failed logins per client address ([`ClientAddress`]; password logins are limited by it as well,
//! in `passwords.rs`), and failed user-access-token logins in particular. A well-formed token is
//! easy to forge (its checksum is public), and each unknown one costs a database lookup; so after
//! too many failures from one address its token logins are refused at once ([`FailureThrottle`]),
//! and its failures are written to the audit log in summaries ([`FailureAudit`]) rather than one
//! event each.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::audit::{Audit, RequestMeta};
use super::failure_audit::{FailureAudit, Summary};
use super::failure_throttle::{FailureLimit, FailureThrottle};
use super::{Error, Identity, Result};
use crate::clock::Clock;

/// Who failures are counted against: the client's IP address, whatever port it comes from. An
/// IPv6 address counts by its /64 network, which one host commonly holds whole. Behind a proxy
/// every client is the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientAddress {
    V4(std::net::Ipv4Addr),
    /// The first 64 bits.
    V6Network(Ipv6Addr),
    /// The transport did not say (not a TCP connection): such clients share one allowance.
    Unknown,
}

impl ClientAddress {
    pub fn of(meta: &RequestMeta) -> Self {
        let Some(ip) = meta
            .peer
            .as_deref()
            .and_then(|peer| peer.parse::<SocketAddr>().ok())
            .map(|peer| peer.ip().to_canonical())
        else {
            return Self::Unknown;
        };
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => Self::V6Network(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(v4) => write!(f, "{v4}"),
            Self::V6Network(network) => write!(f, "{network}/64"),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

/// The throttle and the audit summaries of failed token logins.
pub(crate) struct TokenLoginFailures {
    throttle: FailureThrottle<ClientAddress>,
    audit: FailureAudit<ClientAddress>,
}

impl TokenLoginFailures {
    /// Failures beyond `limit` within its window are refused; each address's failures are
    /// summarised over the same window.
    pub fn new(limit: FailureLimit, clock: std::sync::Arc<dyn Clock>) -> Self {
        Self {
            throttle: FailureThrottle::new(limit, clock),
            audit: FailureAudit::new(limit.window),
        }
    }
}

impl Identity {
    /// Refuses a token login at once, with no database work, when its address has failed too
    /// often; the refusal is counted in the address's audit summary.
    pub(crate) fn admit_token_login(&self, meta: &RequestMeta) -> Result<()> {
        let client = ClientAddress::of(meta);
        let failures = &self.token_login_failures;
        failures.throttle.check(&client).map_err(|retry_after| {
            let error = Error::TooManyFailedLogins { retry_after };
            failures.audit.refused(&client, error.reason(), self.clock.now());
            error
        })
    }

    /// Counts a failed token login against its address and writes what the audit summaries say
    /// is due: this failure on its own if it is the first of the address's interval, and the
    /// counts of the interval before.
    pub(crate) async fn token_login_failed(&self, meta: &RequestMeta, error: &Error) -> Result<()> {
        let client = ClientAddress::of(meta);
        let failures = &self.token_login_failures;
        failures.throttle.record_failure(&client);
        let now = self.clock.now();
        let writes = failures.audit.failed(&client, error.reason(), now);
        self.write_failure_summaries(writes.summaries).await;
        if writes.this_one {
            let audit = Audit::new("login.failed", now, meta)
                .detail("failure", error.reason())
                .build();
            if let Err(e) = self.store.insert_audit(&audit).await {
                failures.audit.restore(Summary {
                    key: Some(client),
                    failure: error.reason(),
                    count: 1,
                    first_time: now,
                    last_time: now,
                });
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Writes the failed-login summaries whose interval is over, and lets the throttle forget
    /// addresses that are no longer failing. Runs every few seconds.
    pub async fn flush_failed_logins(&self) {
        let due = self.token_login_failures.audit.due(self.clock.now());
        self.write_failure_summaries(due).await;
        self.token_login_failures.throttle.prune();
    }

    /// Writes every failed-login count not yet written; at shutdown.
    pub async fn flush_all_failed_logins(&self) {
        let all = self.token_login_failures.audit.take_all();
        self.write_failure_summaries(all).await;
    }

    /// One `login.failed` event per summary, carrying its count; a write that fails puts its
    /// counts back to be written later.
    async fn write_failure_summaries(&self, summaries: Vec<Summary<ClientAddress>>) {
        for summary in summaries {
            let meta = RequestMeta {
                peer: summary.key.map(|client| client.to_string()),
                ..RequestMeta::default()
            };
            let audit = Audit::new("login.failed", summary.last_time, &meta)
                .detail("failure", summary.failure)
                .detail("count", summary.count.to_string())
                .detail("first_time", summary.first_time.to_rfc3339())
                .build();
            if let Err(e) = self.store.insert_audit(&audit).await {
                tracing::warn!(error = %e, count = summary.count, "could not write a failed-login summary; will retry");
                self.token_login_failures.audit.restore(summary);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str) -> ClientAddress {
        ClientAddress::of(&RequestMeta {
            peer: Some(peer.to_owned()),
            ..RequestMeta::default()
        })
    }

    #[test]
    fn clients_are_counted_by_address_not_port() {
        assert_eq!(client("192.0.2.1:5000"), client("192.0.2.1:6000"));
        assert_ne!(client("192.0.2.1:5000"), client("192.0.2.2:5000"));
        assert_eq!(client("192.0.2.1:5000").to_string(), "192.0.2.1");
        assert_eq!(
            client("[::ffff:192.0.2.1]:5000"),
            client("192.0.2.1:1"),
            "IPv4 mapped in IPv6"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_bit_network() {
        let a = client("[2001:db8:1:2:aaaa::1]:443");
        assert_eq!(a, client("[2001:db8:1:2:bbbb::7]:443"));
        assert_ne!(a, client("[2001:db8:1:3::1]:443"));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn clients_of_unknown_address_share_one_key() {
        let unknown = ClientAddress::of(&RequestMeta::default());
        assert_eq!(unknown, client("not an address"));
        assert_eq!(unknown.to_string(), "unknown");
    }
}
