//! Mail, as the domain sees it: what is queued (the outbox), what is sent, and the
//! port a transport implements.
//!
//! A queued message holds no secret. Codes are made when the message is actually sent,
//! so none sits in the database in clear, and its lifetime starts when it leaves.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::account::{AccountId, EmailAddress};
use crate::recovery::RecoveryCode;

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
}

impl MailKind {
    /// Every kind.
    pub const ALL: [Self; 5] =
        [Self::ForgotIdentifier, Self::PasswordReset, Self::Invitation, Self::AccountLocked, Self::PasswordChanged];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForgotIdentifier => "forgot_identifier",
            Self::PasswordReset => "password_reset",
            Self::Invitation => "invitation",
            Self::AccountLocked => "account_locked",
            Self::PasswordChanged => "password_changed",
        }
    }

    /// Parses a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == stored)
    }

    /// A short French label.
    pub fn label_fr(self) -> &'static str {
        match self {
            Self::ForgotIdentifier => "identifiant oublié",
            Self::PasswordReset => "code de nouveau mot de passe",
            Self::Invitation => "invitation",
            Self::AccountLocked => "avis de suspension",
            Self::PasswordChanged => "avis de changement de mot de passe",
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
    /// `guichet mail test`.
    Test,
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
    /// What the server or the connection said.
    pub message: String,
}

/// Writes and sends messages: SMTP, or files in a folder.
#[async_trait]
pub trait MailSender: Send + Sync + std::fmt::Debug {
    /// Sends at once; returns what the server answered.
    async fn send(&self, mail: &OutgoingMail) -> Result<String, SendError>;
}
