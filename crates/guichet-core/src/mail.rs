//! Mail, as the domain sees it: what is queued (the outbox), what is sent, and the
//! port a transport implements.
//!
//! A queued message holds no secret. Codes are made when the message is actually sent,
//! so none sits in the database in clear, and its lifetime starts when it leaves.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::account::{AccountId, EmailAddress};
use crate::codes::{RecoveryCode, TemporaryPassword};
use crate::desk::{CallSlotId, RequestId};

/// An outbox row's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MailId(i64);

impl MailId {
    /// Wraps a stored id.
    pub fn from_stored(id: i64) -> Self {
        Self(id)
    }

    /// The stored id.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// The messages guichet sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// "Forgot identifier": the identifier.
    ForgotIdentifier,
    /// "Forgot password": a code.
    PasswordReset,
    /// An invitation: a code to set a first password.
    Invitation,
    /// The account was locked: until when, and how to get in sooner.
    AccountLocked,
    /// The password changed.
    PasswordChanged,
    /// The identifier and a temporary password, issued by staff.
    TemporaryPassword,
    /// "We received your request": its reference.
    AssistanceReceived,
    /// Phone-call slots to choose from, one link each.
    CallProposal,
    /// The chosen slot, with a calendar file.
    CallConfirmed,
    /// The account's address changed: told to the *old* address.
    EmailChanged,
    /// `guichet mail test`: sent at once, never queued.
    Test,
    /// A code to confirm a proposed secours address, sent to that address.
    RecoveryEmailConfirmation,
    /// A secours address was added or removed: told to the account's address.
    RecoveryEmailChanged,
    /// The account's second factor was added, removed or reset: told to its address.
    SecondFactorChanged,
    /// To the desk's mailbox: a new assistance request (or an undelivered message).
    DeskNewRequest,
    /// To the desk's mailbox: a member confirmed a call slot.
    DeskCallConfirmed,
    /// The account's erasure was asked for: when it will be done, and how to call it off.
    ErasureScheduled,
    /// A code confirming the new address a member chose for their account, sent to it.
    EmailChangeConfirmation,
    /// An upstream identity (Pro Santé Connect…) was linked to the account: told to its
    /// address.
    UpstreamLinked,
}

impl MailKind {
    /// Every kind.
    pub const ALL: [Self; 19] = [
        Self::ForgotIdentifier,
        Self::PasswordReset,
        Self::Invitation,
        Self::AccountLocked,
        Self::PasswordChanged,
        Self::TemporaryPassword,
        Self::AssistanceReceived,
        Self::CallProposal,
        Self::CallConfirmed,
        Self::EmailChanged,
        Self::Test,
        Self::RecoveryEmailConfirmation,
        Self::RecoveryEmailChanged,
        Self::SecondFactorChanged,
        Self::DeskNewRequest,
        Self::DeskCallConfirmed,
        Self::ErasureScheduled,
        Self::EmailChangeConfirmation,
        Self::UpstreamLinked,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForgotIdentifier => "forgot_identifier",
            Self::PasswordReset => "password_reset",
            Self::Invitation => "invitation",
            Self::AccountLocked => "account_locked",
            Self::PasswordChanged => "password_changed",
            Self::TemporaryPassword => "temporary_password",
            Self::AssistanceReceived => "assistance_received",
            Self::CallProposal => "call_proposal",
            Self::CallConfirmed => "call_confirmed",
            Self::EmailChanged => "email_changed",
            Self::Test => "test",
            Self::RecoveryEmailConfirmation => "recovery_email_confirmation",
            Self::RecoveryEmailChanged => "recovery_email_changed",
            Self::SecondFactorChanged => "second_factor_changed",
            Self::DeskNewRequest => "desk_new_request",
            Self::DeskCallConfirmed => "desk_call_confirmed",
            Self::ErasureScheduled => "erasure_scheduled",
            Self::EmailChangeConfirmation => "email_change_confirmation",
            Self::UpstreamLinked => "upstream_linked",
        }
    }

    /// Parses a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == stored)
    }

    /// A short French label.
    pub fn label_fr(self) -> &'static str {
        crate::catalogue::mail_kind(self)
    }

    /// Recovery, lock and password-changed mail: also sent to the secours address.
    pub fn goes_to_secours_too(self) -> bool {
        matches!(self, Self::ForgotIdentifier | Self::PasswordReset | Self::AccountLocked | Self::PasswordChanged)
    }

    /// Mail to a member whose failure the desk must hear of (a bounce opens a request):
    /// everything but the desk's own notices and the test message.
    pub fn reaches_a_member(self) -> bool {
        !matches!(self, Self::DeskNewRequest | Self::DeskCallConfirmed | Self::Test)
    }
}

/// What a message is about, besides its account: which kinds need what is decided here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailSubject {
    /// Nothing more than the account (or the typed address).
    None,
    /// An assistance request (receipt, call proposal).
    Request(RequestId),
    /// A call slot (confirmation).
    Slot(CallSlotId),
}

impl MailSubject {
    /// The id stored beside the message.
    pub fn stored_id(self) -> Option<i64> {
        match self {
            Self::None => None,
            Self::Request(id) => Some(id.get()),
            Self::Slot(id) => Some(id.get()),
        }
    }

    /// Rebuilds what a stored message of `kind` is about; `None` when the stored id does
    /// not fit the kind (a corrupt row).
    pub fn from_stored(kind: MailKind, id: Option<i64>) -> Option<Self> {
        match (kind, id) {
            (MailKind::AssistanceReceived | MailKind::CallProposal | MailKind::DeskNewRequest, Some(id)) => {
                Some(Self::Request(RequestId::from_stored(id)))
            }
            (MailKind::CallConfirmed | MailKind::DeskCallConfirmed, Some(id)) => {
                Some(Self::Slot(CallSlotId::from_stored(id)))
            }
            (
                MailKind::AssistanceReceived
                | MailKind::CallProposal
                | MailKind::CallConfirmed
                | MailKind::DeskNewRequest
                | MailKind::DeskCallConfirmed,
                None,
            ) => None,
            (_, None) => Some(Self::None),
            (_, Some(_)) => None,
        }
    }
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// What.
    pub kind: MailKind,
    /// For which account; `None` for requests typed by a visitor (the address is
    /// matched to an account when the message is sent).
    pub account_id: Option<AccountId>,
    /// The address typed, or the account's.
    pub recipient: EmailAddress,
    /// What the message is about, for kinds that need it.
    pub subject: MailSubject,
}

/// A queued message, claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// Its id.
    pub id: MailId,
    /// What.
    pub kind: MailKind,
    /// For which account, if known.
    pub account_id: Option<AccountId>,
    /// The address it was queued for.
    pub recipient: EmailAddress,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Sending attempts so far, this one included.
    pub attempts: u32,
    /// What it is about.
    pub subject: MailSubject,
    /// The original, when this is its copy to the account's secours address.
    pub copy_of: Option<MailId>,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// Handed over; the server's answer.
    Sent {
        /// What the server said.
        answer: String,
    },
    /// A temporary failure: try again at `next_attempt_at`.
    Retry {
        /// What went wrong.
        error: String,
        /// When to try again.
        next_attempt_at: Timestamp,
    },
    /// A permanent failure, or too long trying: given up.
    Failed {
        /// What went wrong.
        error: String,
    },
    /// Deliberately not sent (no such account, too many requests).
    Skipped {
        /// Why, for the log.
        reason: String,
    },
}

/// What the outbox keeps of an attempt's end, as [`MailOutcome::record`] decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailRecord<'a> {
    /// The message's state from now on.
    pub state: MailState,
    /// The server's answer, the error, or why it was not sent.
    pub answer: &'a str,
    /// When to try again (a retry only).
    pub next_attempt_at: Option<Timestamp>,
    /// When it was done with (not for a retry).
    pub finished_at: Option<Timestamp>,
    /// The attempt's line in the sending log, `sent`, `temporary` or `permanent`, and when
    /// (none for a message not sent on purpose).
    pub attempt: Option<(&'static str, Timestamp)>,
}

impl MailOutcome {
    /// What the outbox keeps of this outcome, reached at `now`.
    pub fn record(&self, now: Timestamp) -> MailRecord<'_> {
        let (state, answer, next_attempt_at, attempt) = match self {
            Self::Sent { answer } => (MailState::Sent, answer, None, Some("sent")),
            Self::Retry { error, next_attempt_at } => {
                (MailState::Pending, error, Some(*next_attempt_at), Some("temporary"))
            }
            Self::Failed { error } => (MailState::Failed, error, None, Some("permanent")),
            Self::Skipped { reason } => (MailState::Skipped, reason, None, None),
        };
        MailRecord {
            state,
            answer: answer.as_str(),
            next_attempt_at,
            finished_at: (state != MailState::Pending).then_some(now),
            attempt: attempt.map(|outcome| (outcome, now)),
        }
    }
}

/// The state of a message, for the mail log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailState {
    /// Waiting to be (re)tried.
    Pending,
    /// Delivered to the mail server.
    Sent,
    /// Given up.
    Failed,
    /// Not sent on purpose.
    Skipped,
}

impl MailState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// Parses a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Pending, Self::Sent, Self::Failed, Self::Skipped].into_iter().find(|s| s.as_str() == stored)
    }
}

/// A line of an account's mail log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailLogEntry {
    /// Its id.
    pub id: MailId,
    /// What.
    pub kind: MailKind,
    /// Where to.
    pub recipient: EmailAddress,
    /// Queued at.
    pub created_at: Timestamp,
    /// State.
    pub state: MailState,
    /// Attempts so far.
    pub attempts: u32,
    /// The last answer or error.
    pub last_answer: Option<String>,
}

/// What a message says, resolved and with its secrets, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailContent {
    /// The identifier.
    ForgotIdentifier {
        /// The identifier.
        identifier: String,
    },
    /// A code to choose a new password.
    PasswordReset {
        /// The identifier, for the login after (a member who forgot both needs only
        /// this message).
        identifier: String,
        /// The code.
        code: RecoveryCode,
        /// Valid until.
        expires_at: Timestamp,
    },
    /// A code to set a first password.
    Invitation {
        /// The identifier the member will log in with.
        identifier: String,
        /// The code.
        code: RecoveryCode,
        /// Valid until.
        expires_at: Timestamp,
    },
    /// The account locked.
    AccountLocked {
        /// Until when.
        until: Timestamp,
    },
    /// The password changed.
    PasswordChanged {
        /// When.
        at: Timestamp,
    },
    /// The identifier and a temporary password.
    TemporaryPassword {
        /// The identifier.
        identifier: String,
        /// The password, made when the message is sent.
        password: TemporaryPassword,
        /// It stops working then.
        expires_at: Timestamp,
    },
    /// A code confirming a secours address.
    RecoveryEmailConfirmation {
        /// The code.
        code: RecoveryCode,
        /// Valid until.
        expires_at: Timestamp,
    },
    /// The secours address changed (told to the account's address).
    RecoveryEmailChanged {
        /// The new secours address, partly hidden; `None` when it was removed.
        added: Option<String>,
        /// When.
        at: Timestamp,
    },
    /// The second factor changed (told to the account's address).
    SecondFactorChanged {
        /// When.
        at: Timestamp,
    },
    /// To the desk: a request to look at.
    DeskNewRequest {
        /// Its reference.
        reference: String,
        /// Its id, for the console's link.
        request: RequestId,
        /// Who wrote (as typed, or the member's name).
        name: String,
        /// A phone number, if given.
        phone: String,
    },
    /// To the desk: a call to make.
    DeskCallConfirmed {
        /// The request's reference.
        reference: String,
        /// Its id, for the console's link.
        request: RequestId,
        /// Start of the call.
        starts_at: Timestamp,
        /// End of the call.
        ends_at: Timestamp,
        /// The number to call.
        phone: String,
    },
    /// An assistance request was received.
    AssistanceReceived {
        /// Its reference.
        reference: String,
    },
    /// Phone-call slots to choose from.
    CallProposal {
        /// The request's reference.
        reference: String,
        /// Each slot, with the link that confirms it.
        slots: Vec<SlotLink>,
    },
    /// A slot was confirmed.
    CallConfirmed {
        /// The request's reference.
        reference: String,
        /// Start of the call.
        starts_at: Timestamp,
        /// End of the call.
        ends_at: Timestamp,
        /// The number staff will call, if given.
        phone: String,
        /// When the message was written (the calendar entry's stamp).
        written_at: Timestamp,
    },
    /// An upstream identity was linked to the account (told to the account's address).
    UpstreamLinked {
        /// When.
        at: Timestamp,
    },
    /// The account's erasure was asked for.
    ErasureScheduled {
        /// When it will be done.
        at: Timestamp,
    },
    /// A code confirming a new address for the account.
    EmailChangeConfirmation {
        /// The code.
        code: RecoveryCode,
        /// Valid until.
        expires_at: Timestamp,
    },
    /// The account's address changed (sent to the old one).
    EmailChanged {
        /// The new address, partly hidden.
        new_address: String,
        /// When.
        at: Timestamp,
    },
    /// `guichet mail test`.
    Test,
}

impl MailContent {
    /// Which message this is.
    pub fn kind(&self) -> MailKind {
        match self {
            Self::ForgotIdentifier { .. } => MailKind::ForgotIdentifier,
            Self::PasswordReset { .. } => MailKind::PasswordReset,
            Self::Invitation { .. } => MailKind::Invitation,
            Self::AccountLocked { .. } => MailKind::AccountLocked,
            Self::PasswordChanged { .. } => MailKind::PasswordChanged,
            Self::TemporaryPassword { .. } => MailKind::TemporaryPassword,
            Self::AssistanceReceived { .. } => MailKind::AssistanceReceived,
            Self::CallProposal { .. } => MailKind::CallProposal,
            Self::CallConfirmed { .. } => MailKind::CallConfirmed,
            Self::EmailChanged { .. } => MailKind::EmailChanged,
            Self::Test => MailKind::Test,
            Self::RecoveryEmailConfirmation { .. } => MailKind::RecoveryEmailConfirmation,
            Self::RecoveryEmailChanged { .. } => MailKind::RecoveryEmailChanged,
            Self::SecondFactorChanged { .. } => MailKind::SecondFactorChanged,
            Self::DeskNewRequest { .. } => MailKind::DeskNewRequest,
            Self::DeskCallConfirmed { .. } => MailKind::DeskCallConfirmed,
            Self::ErasureScheduled { .. } => MailKind::ErasureScheduled,
            Self::UpstreamLinked { .. } => MailKind::UpstreamLinked,
            Self::EmailChangeConfirmation { .. } => MailKind::EmailChangeConfirmation,
        }
    }
}

/// A proposed slot and the link that opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLink {
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// The token of its link (`…/rendez-vous/TOKEN`), made when the proposal is sent.
    pub token: crate::token::PlainToken,
}

/// A message ready to be written and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Recipient address.
    pub to: EmailAddress,
    /// Recipient name (may be empty).
    pub name: String,
    /// What it says.
    pub content: MailContent,
}

/// A send that did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// A permanent failure (5xx): retrying will not help.
    pub permanent: bool,
    /// The mail server could not be reached, or answered nothing of its own (a refused
    /// connection, a timeout): an outage, not something about this message.
    pub unreachable: bool,
    /// What the server or the connection said.
    pub message: String,
}

/// Writes and sends messages: SMTP, or files in a folder.
#[async_trait]
pub trait MailSender: Send + Sync + std::fmt::Debug {
    /// Sends at once; returns what the server answered.
    async fn send(&self, mail: &OutgoingMail) -> Result<String, SendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_says_what_the_outbox_keeps() {
        let now: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let later = now + jiff::SignedDuration::from_mins(5);
        let retry = MailOutcome::Retry { error: "421 busy".into(), next_attempt_at: later };
        let kept = retry.record(now);
        assert_eq!((kept.state, kept.next_attempt_at, kept.finished_at), (MailState::Pending, Some(later), None));
        assert_eq!(kept.attempt, Some(("temporary", now)));
        let skipped = MailOutcome::Skipped { reason: "no".into() };
        let kept = skipped.record(now);
        assert_eq!((kept.state, kept.finished_at, kept.attempt), (MailState::Skipped, Some(now), None));
        let sent = MailOutcome::Sent { answer: "250 ok".into() };
        assert_eq!(sent.record(now).attempt, Some(("sent", now)));
        let failed = MailOutcome::Failed { error: "550 no such user".into() };
        assert_eq!((failed.record(now).state, failed.record(now).answer), (MailState::Failed, "550 no such user"));
    }
}
