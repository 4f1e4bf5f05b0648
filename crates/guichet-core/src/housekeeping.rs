//! Forgetting what is no longer needed: expired sessions, OpenID Connect codes and
//! access-token records a day after they expired, WebAuthn ceremonies left unfinished,
//! and each kind of personal data once its retention period is over (see
//! [`crate::retention`]): old audit lines and failed attempts, the mail log, closed
//! requests, network addresses (cut to their network), erasures that are due and
//! accounts never used.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::personal_data::{ErasureRound, Privacy};
use crate::ports::{OidcStore, PasskeyStore, Ports, PrivacyStore, SessionStore, StoreError};
use crate::retention::{Retention, Swept};

/// What one round forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Expired sessions.
    pub sessions: u64,
    /// OpenID Connect codes and access-token records expired over a day ago.
    pub oidc: u64,
    /// WebAuthn ceremonies begun and never finished.
    pub ceremonies: u64,
    /// Personal data past its period.
    pub swept: Swept,
    /// Accounts erased.
    pub erased: ErasureRound,
}

/// The cleaning rounds.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    sessions: Arc<dyn SessionStore>,
    oidc: Arc<dyn OidcStore>,
    passkeys: Arc<dyn PasskeyStore>,
    upstream: Arc<dyn crate::ports::UpstreamStore>,
    privacy: Arc<dyn PrivacyStore>,
    erasures: Privacy,
    retention: Retention,
}

impl Housekeeping {
    /// Wires the rounds, with these retention periods and erasures.
    pub fn new(ports: &Ports, retention: Retention, erasures: Privacy) -> Self {
        Self {
            sessions: Arc::clone(&ports.sessions),
            oidc: Arc::clone(&ports.oidc),
            passkeys: Arc::clone(&ports.passkeys),
            upstream: Arc::clone(&ports.upstream),
            privacy: Arc::clone(&ports.privacy),
            erasures,
            retention,
        }
    }

    /// The periods in force.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// One round at `now`. Each part goes on when another fails; the first failure is
    /// returned after all were tried.
    pub async fn round(&self, now: Timestamp) -> Result<Forgotten, StoreError> {
        let day_ago = now.saturating_sub(SignedDuration::from_hours(24)).unwrap_or(now);
        let cutoffs = self.retention.cutoffs(now);
        // Erasures first: what they remove need not be swept.
        let erased = self.erasures.erase_due(now, cutoffs.unused_accounts).await;
        let sessions = self.sessions.purge_expired_sessions(now).await;
        let swept = self.privacy.sweep(&cutoffs, true).await;
        let oidc = self.oidc.purge_oidc(day_ago).await;
        let ceremonies = self.passkeys.purge_ceremonies(now).await;
        // The upstream requests (ten minutes) count with the WebAuthn ceremonies.
        let upstream = self.upstream.purge_upstream_requests(now).await;
        let ceremonies = ceremonies.and_then(|c| upstream.map(|u| c + u));
        let erased = erased?;
        let mut swept = swept?;
        swept.unused_accounts = erased.unused;
        Ok(Forgotten { sessions: sessions?, oidc: oidc?, ceremonies: ceremonies?, swept, erased })
    }

    /// What a round at `now` would remove, by kind (message files aside: they are the
    /// mail transport's), and how many asked erasures are due.
    pub async fn preview(&self, now: Timestamp) -> Result<(Swept, u64), StoreError> {
        let cutoffs = self.retention.cutoffs(now);
        let mut swept = self.privacy.sweep(&cutoffs, false).await?;
        swept.unused_accounts =
            u64::try_from(self.privacy.unused_accounts(cutoffs.unused_accounts).await?.len()).unwrap_or(u64::MAX);
        let due = u64::try_from(self.privacy.erasures_due(now).await?.len()).unwrap_or(u64::MAX);
        Ok((swept, due))
    }
}
