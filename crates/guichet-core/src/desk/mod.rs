//! The assistance desk: requests written in by members, their notes, the phone-call
//! slots staff propose (the records here), and the use cases and read models around
//! them ([`service`]).

mod rules;
mod service;

pub use rules::DeskRules;
pub(crate) use service::REFUSALS_COUNT_FOR;
pub use service::{
    Desk, FieldError, FiledSlot, LinkError, NOTE_MAX_CHARS, RequestError, RequestFile, SlotView, WrittenIn, refusal,
};

use jiff::Timestamp;

use crate::account::{AccountId, EmailAddress};
use crate::token::random_bytes;

/// A request's id (a URL's `{id}` is read as one directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(transparent)]
pub struct RequestId(i64);

impl RequestId {
    /// Wraps a stored id.
    pub fn from_stored(id: i64) -> Self {
        Self(id)
    }

    /// The stored id.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// What the writer asks the desk for: the two ways the desk gets a member back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// Their identifier and a temporary password.
    Credentials,
    /// A phone call.
    Call,
}

impl Wants {
    /// The stored (and the form's) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credentials => "credentials",
            Self::Call => "call",
        }
    }

    /// Reads a stored or submitted name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "credentials" => Some(Self::Credentials),
            "call" => Some(Self::Call),
            _ => None,
        }
    }

    /// What the desk reads.
    pub fn label_fr(self) -> &'static str {
        crate::catalogue::wants(self)
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Nobody looked at it yet.
    New,
    /// Someone is on it.
    InProgress,
    /// Waiting for the member (a call, an answer).
    Waiting,
    /// Done.
    Closed,
}

impl RequestState {
    /// Every state.
    pub const ALL: [Self; 4] = [Self::New, Self::InProgress, Self::Waiting, Self::Closed];

    /// The stored (and form) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::InProgress => "in_progress",
            Self::Waiting => "waiting",
            Self::Closed => "closed",
        }
    }

    /// Parses a stored or submitted name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// For people.
    pub fn label_fr(self) -> &'static str {
        crate::catalogue::request_state(self)
    }
}

/// Who opened a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOrigin {
    /// The writer, on `/assistance`.
    Member,
    /// guichet, after a message to the account was given up (the writer cannot be reached).
    Undelivered,
}

impl RequestOrigin {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Undelivered => "undelivered",
        }
    }

    /// The origin stored so.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Member, Self::Undelivered].into_iter().find(|o| o.as_str() == raw)
    }
}

/// A short reference members can quote: `A-` and six unambiguous characters.
pub fn new_reference() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let suffix: String = random_bytes::<6>().iter().map(|b| char::from(ALPHABET[usize::from(b & 0x1f)])).collect();
    format!("A-{suffix}")
}

/// A request as written on `/assistance`, checked.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The writer's name.
    pub name: String,
    /// Where to answer.
    pub email: EmailAddress,
    /// The identifier they think they have (free text).
    pub identifier: String,
    /// A phone number, if they want a call.
    pub phone: String,
    /// What is wrong.
    pub message: String,
    /// What they ask for, if they chose.
    pub wants: Option<Wants>,
    /// Where it came from (for the rate limit).
    pub address: Option<String>,
    /// The account whose address or identifier matches, if one does (staff may change it).
    pub account_id: Option<AccountId>,
    /// Who opened it.
    pub origin: RequestOrigin,
    /// Written from one of the linked account's own addresses (its address or its
    /// secours address): only then is the writer taken for the member, whose request
    /// replaces one guichet opened for the account.
    pub from_account_address: bool,
}

/// A stored request.
#[derive(Debug, Clone)]
pub struct AssistanceRequest {
    /// Its id.
    pub id: RequestId,
    /// The reference given to the writer.
    pub reference: String,
    /// Name.
    pub name: String,
    /// Email.
    pub email: EmailAddress,
    /// Identifier as typed.
    pub identifier: String,
    /// Phone.
    pub phone: String,
    /// Message.
    pub message: String,
    /// What the writer asked for, if they chose.
    pub wants: Option<Wants>,
    /// Who opened it.
    pub origin: RequestOrigin,
    /// State.
    pub state: RequestState,
    /// Linked account.
    pub account_id: Option<AccountId>,
    /// Staff member in charge.
    pub assignee_id: Option<AccountId>,
    /// Written at.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A change staff make to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestChange {
    /// New state.
    State(RequestState),
    /// New assignee (or none).
    Assignee(Option<AccountId>),
    /// Linked account (or none).
    Account(Option<AccountId>),
}

/// A note to add to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNote {
    /// Who writes it (none: guichet itself).
    pub author_id: Option<AccountId>,
    /// What.
    pub body: String,
}

/// A note on a request.
#[derive(Debug, Clone)]
pub struct RequestNote {
    /// Who wrote it (none: guichet itself).
    pub author_id: Option<AccountId>,
    /// When.
    pub at: Timestamp,
    /// What.
    pub body: String,
}

/// A call slot's id (a URL's `{slot}` is read as one directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(transparent)]
pub struct CallSlotId(i64);

impl CallSlotId {
    /// Wraps a stored id.
    pub fn from_stored(id: i64) -> Self {
        Self(id)
    }

    /// The stored id.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Where a slot stands, at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Proposed, to come, and neither confirmed nor withdrawn: the member may choose it.
    Open,
    /// The member chose it.
    Confirmed,
    /// Another slot was chosen, or a newer proposal replaced it.
    Withdrawn,
    /// Never chosen, and its time has come.
    Past,
}

impl SlotState {
    /// For staff.
    pub fn label_fr(self) -> &'static str {
        crate::catalogue::slot_state(self)
    }
}

/// A proposed phone-call slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSlot {
    /// Its id.
    pub id: CallSlotId,
    /// The request.
    pub request_id: RequestId,
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// When the member confirmed it.
    pub confirmed_at: Option<Timestamp>,
    /// Set when another slot of the request was confirmed.
    pub withdrawn_at: Option<Timestamp>,
}

impl CallSlot {
    /// The token of the slot's link (`/rendez-vous/TOKEN`), derived from the server's
    /// key: the mail and the request's page (for the desk to pass on by other means)
    /// show the same link, and only its hash is stored.
    pub fn link_token(&self, key: &crate::keys::ServerKey) -> crate::token::PlainToken {
        let data = format!("{}:{}:{}", self.id.get(), self.request_id.get(), self.starts_at.as_millisecond());
        crate::token::PlainToken::from_mac(&key.mac(crate::keys::Purpose::SlotLink, data.as_bytes()))
    }

    /// Where it stands at `now`: the one rule every page, mail and the store follow.
    pub fn state_at(&self, now: Timestamp) -> SlotState {
        if self.confirmed_at.is_some() {
            SlotState::Confirmed
        } else if self.withdrawn_at.is_some() {
            SlotState::Withdrawn
        } else if self.starts_at <= now {
            SlotState::Past
        } else {
            SlotState::Open
        }
    }
}

/// What confirming a slot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Confirmed now (the confirmation mail is queued).
    Confirmed(CallSlot),
    /// It was confirmed before (a double click, a second tab): nothing more happens.
    AlreadyConfirmed(CallSlot),
    /// Another slot was chosen, or the slot is past.
    Unavailable(CallSlot),
}
