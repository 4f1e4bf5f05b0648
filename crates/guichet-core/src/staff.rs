//! The assistance desk's requests and call slots, and what members do to their own
//! account. Staff actions on accounts live in [`crate::console`], where authority is
//! decided.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;

use crate::account::{Account, AccountId, EmailAddress};
use crate::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::console::{Denied, StaffActor};
use crate::desk::{Confirmation, NewRequest, RequestChange, RequestId};
use crate::hashing::{HashError, PasswordHasher, Verification};
use crate::lockout::ThrottleKey;
use crate::password::{NewPassword, PasswordError, PasswordPolicy};
use crate::ports::{Store, StoreError};
use crate::session::Session;
use crate::token::PlainToken;

/// The longest message or note, in characters.
pub const NOTE_MAX_CHARS: usize = 5000;

/// Why a password change did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The current password is wrong.
    #[error("le mot de passe actuel n'est pas le bon")]
    WrongCurrent,
    /// The new one does not meet the policy.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Why a request could not be linked to an account.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No account has this identifier.
    #[error("aucun compte n'a cet identifiant")]
    Unknown,
    /// The actor may not link to this account.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an assistance request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A field is missing or wrong; the message says which, in French.
    #[error("{0}")]
    Invalid(&'static str),
    /// Too many requests from this address.
    #[error("trop de demandes depuis votre réseau")]
    TooMany,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The desk's and the members' own actions.
#[derive(Debug, Clone)]
pub struct Desk {
    store: Arc<dyn Store>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    policy: PasswordPolicy,
    lockout: crate::lockout::LockoutPolicy,
    /// Requests per address and hour.
    pub requests_per_hour: u64,
}

impl Desk {
    /// Wires the use cases.
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        policy: PasswordPolicy,
        lockout: crate::lockout::LockoutPolicy,
    ) -> Self {
        Self { store, hasher, clock, policy, lockout, requests_per_hour: 5 }
    }

    fn event(
        &self,
        account: AccountId,
        kind: AuditKind,
        actor: Actor,
        context: &RequestContext,
        detail: Option<String>,
    ) -> NewAuditEvent {
        NewAuditEvent { at: self.clock.now(), account_id: Some(account), kind, actor, context: context.clone(), detail }
    }

    /// Changes a member's own password. With `current` (an ordinary change) it must be
    /// right — a wrong one counts as a failed login; without (a forced change after a
    /// temporary password) it is not asked. The member's other sessions end and a
    /// notice is mailed.
    pub async fn change_password(
        &self,
        account: &Account,
        session: &Session,
        current: Option<SecretString>,
        new_password: SecretString,
        confirmation: &SecretString,
        context: &RequestContext,
    ) -> Result<(), ChangeError> {
        if let Some(current) = current {
            let hash = account.password_hash.clone().ok_or(ChangeError::WrongCurrent)?;
            if let Verification::Mismatch = self.hasher.verify(crate::password::normalised(&current), hash).await? {
                self.store.record_login_failure(account.id, &self.lockout, context, self.clock.now()).await?;
                return Err(ChangeError::WrongCurrent);
            }
        }
        let personal = [account.identifier.as_str(), account.email.as_str(), account.display_name.as_str()];
        let password = NewPassword::parse_confirmed(new_password, confirmation, self.policy, &personal)?;
        let hash = self.hasher.hash(password.into_secret()).await?;
        self.store.change_password(account.id, &hash, &session.token_hash, context, self.clock.now()).await?;
        Ok(())
    }

    /// Ends every session of the member but this one.
    pub async fn end_other_sessions(
        &self,
        account: AccountId,
        session: &Session,
        context: &RequestContext,
    ) -> Result<u64, StoreError> {
        let ended = self.store.delete_account_sessions(account, Some(&session.token_hash)).await?;
        let event = self.event(
            account,
            AuditKind::OtherSessionsEnded,
            Actor::Member,
            context,
            Some(format!("{ended} session(s)")),
        );
        self.store.record_event(event).await?;
        Ok(ended)
    }

    /// Records an assistance request written on `/assistance`, and queues its receipt.
    pub async fn write_in(
        &self,
        name: &str,
        email: &str,
        identifier: &str,
        phone: &str,
        message: &str,
        context: &RequestContext,
    ) -> Result<crate::desk::AssistanceRequest, RequestError> {
        let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() || name.chars().count() > 120 {
            return Err(RequestError::Invalid("indiquez votre nom (120 caractères au plus)"));
        }
        let email = EmailAddress::parse(email).map_err(|_| {
            RequestError::Invalid("l'adresse électronique n'est pas valide (exemple : prenom.nom@hopital.fr)")
        })?;
        let message = message.trim();
        if message.is_empty() || message.chars().count() > NOTE_MAX_CHARS {
            return Err(RequestError::Invalid("décrivez votre difficulté (5 000 caractères au plus)"));
        }
        let phone = phone.trim();
        if phone.chars().count() > 30 || phone.chars().any(|c| !(c.is_ascii_digit() || " +-.()".contains(c))) {
            return Err(RequestError::Invalid(
                "le numéro de téléphone ne peut contenir que des chiffres, des espaces et + - . ( )",
            ));
        }
        let identifier: String = identifier.trim().chars().take(64).collect();
        let now = self.clock.now();
        let address = context.address.map(crate::lockout::throttle_key);
        if let Some(address) = &address {
            // Counted before anything is written, atomically: twenty at once get five.
            let key = ThrottleKey::AssistanceRequests(address.clone());
            let (written, _) = self.store.count(&key, SignedDuration::from_hours(1), now).await?;
            if written > self.requests_per_hour {
                self.store.uncount(&key, now).await?;
                return Err(RequestError::TooMany);
            }
        }
        let by_email = self.store.find_account_by_email(&email).await?;
        let account = match by_email {
            Some(account) => Some(account),
            None => match crate::account::Identifier::parse(&identifier) {
                Ok(parsed) => self.store.find_account_by_identifier(&parsed).await?,
                Err(_) => None,
            },
        };
        // What anyone types must not write into a staff account's history: staff requests
        // are linked by an administrator, by hand.
        let account_id = account.filter(|a| a.role == crate::account::Role::Member).map(|a| a.id);
        let request = NewRequest {
            name,
            email,
            identifier,
            phone: phone.to_owned(),
            message: message.to_owned(),
            address,
            account_id,
        };
        Ok(self.store.create_request(&request, now).await?)
    }

    /// Changes a request's state, assignee or linked account, with a note saying so.
    pub async fn change_request(
        &self,
        id: RequestId,
        change: RequestChange,
        staff: &Account,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.store.update_request(id, change, now).await?;
        let note = match change {
            RequestChange::State(state) => format!("État : {}", state.label_fr()),
            RequestChange::Assignee(Some(_)) => "Demande attribuée".to_owned(),
            RequestChange::Assignee(None) => "Plus personne n'est chargé de la demande".to_owned(),
            RequestChange::Account(Some(_)) => "Demande rattachée à un compte".to_owned(),
            RequestChange::Account(None) => "Demande détachée du compte".to_owned(),
        };
        self.store.add_note(id, Some(staff.id), &note, now).await
    }

    /// Adds a staff note to a request.
    pub async fn add_note(&self, id: RequestId, staff: &Account, body: &str) -> Result<(), RequestError> {
        let body = body.trim();
        if body.is_empty() || body.chars().count() > NOTE_MAX_CHARS {
            return Err(RequestError::Invalid("la note est vide ou trop longue (5 000 caractères au plus)"));
        }
        Ok(self.store.add_note(id, Some(staff.id), body, self.clock.now()).await?)
    }

    /// Links a request to the account with this identifier. Assistance staff link to
    /// members' accounts only.
    pub async fn link_request(
        &self,
        id: RequestId,
        identifier: &str,
        actor: &StaffActor,
        staff: &Account,
    ) -> Result<(), LinkError> {
        let Ok(identifier) = crate::account::Identifier::parse(identifier) else { return Err(LinkError::Unknown) };
        let account = self.store.find_account_by_identifier(&identifier).await?.ok_or(LinkError::Unknown)?;
        if !actor.is_admin() && account.role != crate::account::Role::Member {
            return Err(LinkError::Denied(Denied::StaffTarget));
        }
        Ok(self.change_request(id, RequestChange::Account(Some(account.id)), staff).await?)
    }

    /// Proposes one to three slots; the member gets one link per slot.
    pub async fn propose_slots(
        &self,
        id: RequestId,
        slots: &[(Timestamp, Timestamp)],
        staff: &Account,
    ) -> Result<(), RequestError> {
        if slots.is_empty() || slots.len() > 3 {
            return Err(RequestError::Invalid("proposez d'un à trois créneaux"));
        }
        let now = self.clock.now();
        if slots.iter().any(|(start, end)| *start <= now || end <= start) {
            return Err(RequestError::Invalid("chaque créneau doit être à venir, et finir après avoir commencé"));
        }
        self.store.propose_slots(id, slots, staff.id, now).await?;
        let note = format!("{} créneau(x) proposé(s) par téléphone", slots.len());
        self.store.add_note(id, Some(staff.id), &note, now).await?;
        Ok(())
    }

    /// Confirms a slot from its link's token (the POST behind the button).
    pub async fn confirm_slot(&self, token: &str) -> Result<Option<Confirmation>, StoreError> {
        let Some(token) = PlainToken::from_presented(token) else { return Ok(None) };
        self.store.confirm_slot(&token.hash(), self.clock.now()).await
    }

    /// The policy in force for new passwords.
    pub fn password_policy(&self) -> PasswordPolicy {
        self.policy
    }
}
