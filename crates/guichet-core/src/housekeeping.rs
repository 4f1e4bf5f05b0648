//! Forgetting what is no longer needed: expired sessions, old counters, old device
//! attempts, OpenID Connect codes and access-token records a day after they expired,
//! WebAuthn ceremonies left unfinished, and finished mail (the addresses typed into
//! "forgot" forms are not kept longer than a month).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::ports::{DeviceStore, OidcStore, OutboxStore, PasskeyStore, Ports, SessionStore, StoreError, ThrottleStore};

/// What one round forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Expired sessions.
    pub sessions: u64,
    /// Per-address count buckets older than a day.
    pub counts: u64,
    /// Device-mark windows older than a mark's lifetime.
    pub device_attempts: u64,
    /// Finished messages older than a month.
    pub mail: u64,
    /// OpenID Connect codes and access-token records expired over a day ago.
    pub oidc: u64,
    /// WebAuthn ceremonies begun and never finished.
    pub ceremonies: u64,
}

/// The cleaning rounds.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    sessions: Arc<dyn SessionStore>,
    throttle: Arc<dyn ThrottleStore>,
    devices: Arc<dyn DeviceStore>,
    outbox: Arc<dyn OutboxStore>,
    oidc: Arc<dyn OidcStore>,
    passkeys: Arc<dyn PasskeyStore>,
}

impl Housekeeping {
    /// Wires the rounds.
    pub fn new(ports: &Ports) -> Self {
        Self {
            sessions: Arc::clone(&ports.sessions),
            throttle: Arc::clone(&ports.throttle),
            devices: Arc::clone(&ports.devices),
            outbox: Arc::clone(&ports.outbox),
            oidc: Arc::clone(&ports.oidc),
            passkeys: Arc::clone(&ports.passkeys),
        }
    }

    /// One round at `now`. Each part goes on when another fails; the first failure is
    /// returned after all were tried.
    pub async fn round(&self, now: Timestamp) -> Result<Forgotten, StoreError> {
        let ago = |hours: i64| now.saturating_sub(SignedDuration::from_hours(hours)).unwrap_or(now);
        let sessions = self.sessions.purge_expired_sessions(now).await;
        let counts = self.throttle.purge_counts(ago(24)).await;
        let device_attempts =
            self.devices.purge_device_attempts(now.saturating_sub(crate::device::LIFETIME).unwrap_or(now)).await;
        let mail = self.outbox.purge_finished_mail(ago(24 * 30)).await;
        let oidc = self.oidc.purge_oidc(ago(24)).await;
        let ceremonies = self.passkeys.purge_ceremonies(now).await;
        Ok(Forgotten {
            sessions: sessions?,
            counts: counts?,
            device_attempts: device_attempts?,
            mail: mail?,
            oidc: oidc?,
            ceremonies: ceremonies?,
        })
    }
}
