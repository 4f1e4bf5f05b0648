//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a guichet session
//! ends, the database queues one logout per application the session signed in to (in
//! the transaction that ends it, whatever ends it), and the messenger delivers them —
//! a logout token POSTed to the application's back-channel URI — retrying what failed
//! for a while, like the postman does mail. A member's logout never waits on it.
//!
//! Each application has a lane of its own (a task, a few deliveries at once), so that an
//! application that answers slowly, or not at all, delays only its own logouts.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;

use super::{ClientId, LogoutToken, Oidc, OidcError};
use crate::account::AccountId;
use crate::clock::Clock;
use crate::console::StaffActor;
use crate::ports::{OidcStore, StoreError};

/// A queued logout's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogoutId(i64);

impl LogoutId {
    /// Wraps a stored id.
    pub fn from_stored(id: i64) -> Self {
        Self(id)
    }

    /// The stored id.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A logout waiting to be delivered, as claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedLogout {
    /// Its id.
    pub id: LogoutId,
    /// The application to tell.
    pub client: ClientId,
    /// Whose session ended.
    pub account: AccountId,
    /// The session's `sid`.
    pub sid: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When the session ended.
    pub ended_at: Timestamp,
}

/// Where a logout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutState {
    /// Not delivered yet: waiting for its (next) attempt.
    Pending,
    /// The application answered 2xx.
    Delivered,
    /// Given up: refused, or unreachable for too long.
    Failed,
}

impl LogoutState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// From storage.
    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A logout as staff see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutEntry {
    /// Its id.
    pub id: LogoutId,
    /// The application.
    pub client: ClientId,
    /// Whose session.
    pub account: AccountId,
    /// That account's identifier, while it exists.
    pub identifier: Option<String>,
    /// When the session ended.
    pub ended_at: Timestamp,
    /// Where it stands.
    pub state: LogoutState,
    /// Attempts so far.
    pub attempts: u32,
    /// What the application (or the network) answered last.
    pub last_answer: Option<String>,
    /// When it was delivered or given up.
    pub finished_at: Option<Timestamp>,
}

/// How an attempt went, to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// Delivered: the application's answer.
    Delivered(String),
    /// Try again at this instant.
    Retry(String, Timestamp),
    /// Given up.
    Failed(String),
}

/// What an application's back channel answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx.
    Accepted(String),
    /// Could not be reached, timed out, 5xx, 408 or 429: worth another try.
    Temporary(String),
    /// Any other answer (the application refuses the token): not worth another.
    Refused(String),
}

/// POSTs logout tokens (`logout_token=…`, form-encoded) to back-channel URIs.
#[async_trait::async_trait]
pub trait LogoutSender: Send + Sync + std::fmt::Debug {
    /// Delivers one logout token to `uri`.
    async fn send(&self, uri: &str, logout_token: &str) -> Delivery;
}

/// Temporary failures are retried for this long, then given up: an application's own
/// session has long ended by then.
pub const GIVE_UP_AFTER: SignedDuration = SignedDuration::from_hours(24);
/// How long a claimed logout is held before another instance may take it.
const LEASE: SignedDuration = SignedDuration::from_mins(1);
/// Logouts one application is sent at once.
const PER_APPLICATION: u32 = 4;

/// The delay before attempt `attempts + 1`: 10 s, doubling, at most ten minutes.
fn backoff(attempts: u32) -> SignedDuration {
    let doublings = attempts.saturating_sub(1).min(6);
    SignedDuration::from_secs(10 * (1_i64 << doublings)).min(SignedDuration::from_mins(10))
}

/// Delivers the queued logouts.
#[derive(Debug, Clone)]
pub struct Messenger {
    oidc: Oidc,
    store: Arc<dyn OidcStore>,
    sender: Arc<dyn LogoutSender>,
    clock: Arc<dyn Clock>,
    signal: Arc<Notify>,
    /// The applications whose lane runs now.
    lanes: Arc<std::sync::Mutex<std::collections::HashSet<ClientId>>>,
}

impl Messenger {
    /// Wires the messenger.
    pub fn new(oidc: Oidc, sender: Arc<dyn LogoutSender>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: Arc::clone(&oidc.store),
            oidc,
            sender,
            clock,
            signal: Arc::new(Notify::new()),
            lanes: Arc::default(),
        }
    }

    /// Rung when this process ends a session: the messenger looks at once instead of
    /// at its next round.
    pub fn signal(&self) -> Arc<Notify> {
        Arc::clone(&self.signal)
    }

    /// Starts a lane for each application with logouts due now and none running (on
    /// the current runtime); returns how many were started. The lanes go on alone.
    pub async fn deliver_due(&self) -> Result<usize, OidcError> {
        let due = self.store.clients_with_due_logouts(self.clock.now()).await?;
        let mut started = 0;
        for client in due {
            let free = self.lanes.lock().map(|mut lanes| lanes.insert(client.clone())).unwrap_or(false);
            if free {
                let messenger = self.clone();
                tokio::spawn(async move { messenger.lane(client).await });
                started += 1;
            }
        }
        Ok(started)
    }

    /// Delivers `client`'s logouts, a few at once, until none is due.
    async fn lane(&self, client: ClientId) {
        loop {
            match self.deliver_some(&client).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(client = %client, %error, "could not deliver back-channel logouts; trying again shortly");
                    break;
                }
            }
        }
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.remove(&client);
        }
    }

    /// Claims and delivers up to [`PER_APPLICATION`] of `client`'s due logouts at once;
    /// returns how many.
    async fn deliver_some(&self, client: &ClientId) -> Result<usize, OidcError> {
        let now = self.clock.now();
        let batch = self.store.claim_due_logouts(client, now, now + LEASE, PER_APPLICATION).await?;
        let outcomes = futures_util::future::join_all(batch.iter().map(|logout| self.deliver(logout))).await;
        for (logout, outcome) in batch.iter().zip(outcomes) {
            // Each one recorded as it went; one that could not even be signed stays
            // claimed, and goes again when its lease ends.
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::warn!(logout = logout.id.get(), %error, "could not sign a logout token; trying again later");
                    continue;
                }
            };
            match &outcome {
                LogoutOutcome::Delivered(_) => {
                    tracing::info!(logout = logout.id.get(), client = %logout.client, "logout delivered");
                }
                LogoutOutcome::Retry(answer, _) => {
                    tracing::warn!(logout = logout.id.get(), client = %logout.client, answer, "logout delayed");
                }
                LogoutOutcome::Failed(answer) => {
                    tracing::error!(logout = logout.id.get(), client = %logout.client, answer, "logout given up");
                }
            }
            let result = match outcome {
                LogoutOutcome::Delivered(_) => "delivered",
                LogoutOutcome::Retry(..) => "retry",
                LogoutOutcome::Failed(_) => "failed",
            };
            metrics::counter!("guichet_backchannel_logout_total", "result" => result).increment(1);
            self.store.finish_logout(logout.id, &outcome, self.clock.now()).await?;
        }
        Ok(batch.len())
    }

    async fn deliver(&self, logout: &QueuedLogout) -> Result<LogoutOutcome, OidcError> {
        let now = self.clock.now();
        let uri = match self.store.find_client(&logout.client).await? {
            Some(client) => client.backchannel_logout_uri,
            None => None,
        };
        let Some(uri) = uri else {
            return Ok(LogoutOutcome::Failed("the application no longer has a back-channel logout URI".to_owned()));
        };
        let token = self.oidc.signer().await?.logout_token(&LogoutToken {
            issuer: self.oidc.issuer.clone(),
            audience: logout.client.to_string(),
            subject: self.oidc.subject(logout.account),
            sid: logout.sid.clone(),
            issued_at: now,
        })?;
        Ok(match self.sender.send(&uri, &token).await {
            Delivery::Accepted(answer) => LogoutOutcome::Delivered(answer),
            Delivery::Refused(answer) => LogoutOutcome::Failed(answer),
            Delivery::Temporary(answer) if now.duration_since(logout.ended_at) >= GIVE_UP_AFTER => {
                LogoutOutcome::Failed(answer)
            }
            Delivery::Temporary(answer) => LogoutOutcome::Retry(answer, now + backoff(logout.attempts)),
        })
    }

    /// The latest logouts, for administrators (assistance staff help members, they do
    /// not wire applications).
    pub async fn log_for(&self, actor: &StaffActor, limit: u32) -> Result<Option<Vec<LogoutEntry>>, StoreError> {
        if !actor.is_admin() {
            return Ok(None);
        }
        self.store.logout_log(limit).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_come_sooner_than_an_application_session_ends() {
        assert_eq!(backoff(1), SignedDuration::from_secs(10));
        assert_eq!(backoff(3), SignedDuration::from_secs(40));
        assert_eq!(backoff(30), SignedDuration::from_mins(10));
    }
}
