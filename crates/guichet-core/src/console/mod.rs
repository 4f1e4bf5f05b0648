//! The staff console's actions on accounts, and who may take them on whom.
//!
//! Authority is decided here, with the target in hand, never by a route guard that only
//! looks at the actor: a [`StaffActor`] can only be built by [`Console::actor`] from the
//! account as stored, every action loads its target and asks [`decide`], and the rules
//! that need the whole table (the last active administrator) are checked by the store
//! in the same transaction as the change.
//!
//! The rules: assistance staff act on `member` accounts only; administrators act on
//! everyone; only administrators change roles; nobody disables or demotes the last active
//! administrator, and nobody disables themselves or takes themselves out of the admin role.
//! Second factors are reset by administrators for anyone but themselves and by
//! assistance for members only, once they say how they checked who asks.
//!
//! The console's door is decided here too ([`Console::door`]): with
//! `GUICHET_STAFF_SECOND_FACTOR=required`, a staff session without a second factor gets
//! no actor, whatever the route.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::account::{Account, AccountId, EmailAddress, NameParts, Role};
use crate::account_changes::AccountChanges;
use crate::account_changes::hold_within;
use crate::audit::{Actor, AuditDetail, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::codes::TemporaryPassword;
use crate::credentials::{Credentials, Provided};
use crate::groups::GroupName;
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::members::AddMemberError;
use crate::ports::{
    AccountStore, AuditStore, GroupStore, Guarded, OutboxStore, Ports, Reach, RecoveryStore, StoreError, Transactions,
};
use crate::second_factor::{Factors, SecondFactors, StaffRule};
use crate::token::TokenHash;

mod create;
mod queries;

pub use create::{AccountForm, CreateError, FormError, decide_creation};
pub use queries::{ACCOUNTS_PER_PAGE, AccountFilters, AccountList, DailyCounts, MemberFile};

/// A staff member acting in the console, as the core found them in storage. Its fields
/// are private and [`Console::actor`] alone makes one, so a handler cannot claim a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffActor {
    id: AccountId,
    role: Role,
}

impl StaffActor {
    /// The staff member's account.
    pub fn id(&self) -> AccountId {
        self.id
    }

    /// Their role: [`Role::Assistance`] or [`Role::Admin`].
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether they are an administrator.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Who they are in the audit trail.
    pub fn audit_actor(&self) -> Actor {
        Actor::Staff(self.id)
    }

    /// Which accounts their writes may land on, checked again by the store in the write's
    /// own transaction (a member promoted meanwhile is out of an assistant's reach).
    pub fn reach(&self) -> Reach {
        if self.is_admin() { Reach::Anyone } else { Reach::MembersOnly }
    }

    /// Whether they may take `action` on `target` (see [`decide`]).
    pub fn may(&self, action: ConsoleAction, target: &Account) -> bool {
        decide(self, action, target).is_ok()
    }
}

/// What staff do to an account in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsoleAction {
    /// Lift a lock now.
    Unlock,
    /// Mail the identifier.
    SendIdentifier,
    /// Mail a code to choose a new password.
    SendResetCode,
    /// Mail a temporary password.
    IssueTemporaryPassword,
    /// Change email and name.
    ChangeDetails,
    /// Disable the account.
    Disable,
    /// Re-enable it.
    Enable,
    /// Change its role to the one given.
    ChangeRole(Role),
    /// Put it in a group or take it out of one.
    ChangeGroups,
    /// End every session it has open, and what they opened elsewhere.
    EndSessions,
    /// Remove its second factor (the person lost their phone and their backup codes).
    ResetSecondFactor,
    /// Produce everything held about the person (their right of access, asked at the desk).
    ExportData,
    /// Ask for the account's erasure, done after the stated delay (asked at the desk).
    Erase,
    /// Remove an upstream identity (Pro Santé Connect…) linked to it.
    UnlinkUpstream,
}

impl ConsoleAction {
    /// Every action, each role change included: what the authority matrix walks.
    pub const ALL: [Self; 16] = [
        Self::Unlock,
        Self::SendIdentifier,
        Self::SendResetCode,
        Self::IssueTemporaryPassword,
        Self::ChangeDetails,
        Self::Disable,
        Self::Enable,
        Self::ChangeRole(Role::Member),
        Self::ChangeRole(Role::Assistance),
        Self::ChangeRole(Role::Admin),
        Self::ChangeGroups,
        Self::EndSessions,
        Self::ResetSecondFactor,
        Self::ExportData,
        Self::Erase,
        Self::UnlinkUpstream,
    ];
}

/// Why staff may not take an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Assistance staff act on members' accounts only.
    #[error("{}", crate::catalogue::DENIED_STAFF_TARGET)]
    StaffTarget,
    /// Roles and groups are changed by administrators only.
    #[error("{}", crate::catalogue::DENIED_ADMINS_ONLY)]
    AdminsOnly,
    /// An administrator cannot disable themselves, leave the admin role themselves, or
    /// reset their own second factor.
    #[error("{}", crate::catalogue::DENIED_THEMSELVES)]
    Themselves,
    /// The last active administrator cannot be disabled or demoted.
    #[error("{}", crate::catalogue::LAST_ADMINISTRATOR)]
    LastAdministrator,
    /// An administrator's account is not erased from the console: its role goes first.
    #[error("{}", crate::catalogue::DENIED_ERASE_ADMINISTRATOR)]
    AdministratorErasure,
}

/// The authority matrix, with the target in hand. The last-administrator rule needs the
/// whole table and is checked by the store, atomically, when the change is made.
pub fn decide(actor: &StaffActor, action: ConsoleAction, target: &Account) -> Result<(), Denied> {
    if matches!(action, ConsoleAction::ChangeRole(_) | ConsoleAction::ChangeGroups | ConsoleAction::Erase)
        && !actor.is_admin()
    {
        return Err(Denied::AdminsOnly);
    }
    if !actor.is_admin() && target.role != Role::Member {
        return Err(Denied::StaffTarget);
    }
    let on_themselves_forbidden = match action {
        ConsoleAction::Disable | ConsoleAction::ResetSecondFactor | ConsoleAction::Erase => true,
        ConsoleAction::ChangeRole(role) => role != Role::Admin,
        _ => false,
    };
    if on_themselves_forbidden && target.id == actor.id {
        return Err(Denied::Themselves);
    }
    if action == ConsoleAction::Erase && target.role == Role::Admin {
        return Err(Denied::AdministratorErasure);
    }
    Ok(())
}

/// Why a console action did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The target account does not exist.
    #[error("{}", crate::catalogue::CONSOLE_ERROR_NOT_FOUND)]
    NotFound,
    /// The actor may not do this to this account.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// No group has this name.
    #[error("{}", crate::catalogue::CONSOLE_ERROR_UNKNOWN_GROUP)]
    UnknownGroup,
    /// What was typed is not valid (details); the message says why, in French.
    #[error(transparent)]
    Invalid(AddMemberError),
    /// The page the action came from no longer shows the account as it is (a form sent
    /// again with the browser's Back button, or by another staff member meanwhile).
    #[error("{}", crate::catalogue::CONSOLE_ERROR_STALE)]
    Stale,
    /// A second factor is reset only once staff say how they checked who asks.
    #[error("{}", crate::catalogue::CONSOLE_ERROR_UNVERIFIED)]
    Unverified,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
}

/// What the console's door says of a signed-in account (see [`Console::door`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Door {
    /// In, as this actor.
    Open(StaffActor),
    /// Not staff (or disabled): the console is not for them.
    Closed,
    /// Staff without a second factor: they enrol first.
    Enrol,
    /// Staff with a second factor, in a session that did not give it: they give it first.
    StepUp,
}

impl From<AddMemberError> for ConsoleError {
    fn from(error: AddMemberError) -> Self {
        match error {
            AddMemberError::Store(error) => error.into(),
            other => Self::Invalid(other),
        }
    }
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        match error {
            // The target became staff between the decision and the write.
            StoreError::Changed => Self::Denied(Denied::StaffTarget),
            other => Self::Store(other),
        }
    }
}

/// The console's use cases on accounts.
#[derive(Debug, Clone)]
pub struct Console {
    accounts: Arc<dyn AccountStore>,
    credentials: Credentials,
    account_changes: AccountChanges,
    outbox: Arc<dyn OutboxStore>,
    audit: Arc<dyn AuditStore>,
    recovery: Arc<dyn RecoveryStore>,
    groups: Arc<dyn GroupStore>,
    memberships: crate::groups::Groups,
    transactions: Arc<dyn Transactions>,
    clock: Arc<dyn Clock>,
    temporary_password_ttl: SignedDuration,
    staff_rule: StaffRule,
}

/// A temporary password made for staff to hand over themselves: shown once, on the page
/// that made it, never stored in clear nor shown again. `Debug` leaves the password out.
#[derive(Clone)]
pub struct HandedPassword {
    /// The account it opens.
    pub account: Account,
    /// The password.
    pub password: TemporaryPassword,
    /// It stops working then.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for HandedPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandedPassword").field("account", &self.account.id).finish_non_exhaustive()
    }
}

impl Console {
    /// Wires the use cases; staff-issued temporary passwords live `temporary_password_ttl`.
    pub fn new(ports: &Ports, clock: Arc<dyn Clock>, temporary_password_ttl: SignedDuration) -> Self {
        Self {
            accounts: Arc::clone(&ports.accounts),
            credentials: Credentials::of(ports),
            account_changes: AccountChanges::of(ports),
            outbox: Arc::clone(&ports.outbox),
            audit: Arc::clone(&ports.audit),
            recovery: Arc::clone(&ports.recovery),
            groups: Arc::clone(&ports.groups),
            memberships: crate::groups::Groups::new(ports, Arc::clone(&clock)),
            transactions: Arc::clone(&ports.transactions),
            clock,
            temporary_password_ttl,
            staff_rule: StaffRule::default(),
        }
    }

    /// Whether staff must have a second factor (`GUICHET_STAFF_SECOND_FACTOR`).
    #[must_use]
    pub fn with_staff_rule(mut self, rule: StaffRule) -> Self {
        self.staff_rule = rule;
        self
    }

    /// Whether staff must have a second factor.
    pub fn staff_rule_requires(&self) -> bool {
        self.staff_rule == StaffRule::Required
    }

    /// The console's door for `account`, signed in with `factors`: staff are let in
    /// only with a second factor when the rule requires one.
    pub async fn door(&self, account: AccountId, factors: Factors) -> Result<Door, StoreError> {
        let Some(actor) = self.actor(account).await? else { return Ok(Door::Closed) };
        if self.staff_rule == StaffRule::Optional || factors.has_second() {
            return Ok(Door::Open(actor));
        }
        let status = self.accounts.second_factors(account).await?;
        Ok(if status.has_second() { Door::StepUp } else { Door::Enrol })
    }

    /// Ends every session of the target, and what they opened elsewhere (forward-auth
    /// passes, tokens, back-channel logouts). An administrator ending their own keeps
    /// `current`, the one they act from. Returns how many ended; audited.
    pub async fn end_sessions(
        &self,
        actor: &StaffActor,
        target: AccountId,
        current: Option<&TokenHash>,
        context: &RequestContext,
    ) -> Result<u64, ConsoleError> {
        let target = self.target(actor, ConsoleAction::EndSessions, target).await?;
        let mut work = self.transactions.begin().await?;
        let held = hold_within(work.as_mut(), target.id, actor.reach()).await?;
        let keep = current.filter(|_| held.account.id == actor.id());
        let mut event = self.event(actor, target.id, AuditKind::OtherSessionsEnded, context);
        let ended = work.end_sessions(target.id, keep, event.at).await?;
        event.detail = Some(AuditDetail::Sessions(ended));
        work.record(&event).await?;
        work.commit().await?;
        Ok(ended)
    }

    /// Removes the target's second factor and ends their sessions, once `verified` says
    /// how staff checked that the person asking is the account's (a call back to the
    /// number on file, a question only they can answer); the person is mailed, it is
    /// audited with `verified`. `Ok(false)` when there was none.
    pub async fn reset_second_factor(
        &self,
        actor: &StaffActor,
        target: AccountId,
        verified: &str,
        context: &RequestContext,
    ) -> Result<bool, ConsoleError> {
        let verified: String = verified.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
        let target = self.target(actor, ConsoleAction::ResetSecondFactor, target).await?;
        if verified.is_empty() {
            return Err(ConsoleError::Unverified);
        }
        let now = self.clock.now();
        let mut work = self.transactions.begin().await?;
        let held = hold_within(work.as_mut(), target.id, actor.reach()).await?;
        let detail = Some(AuditDetail::Verified(verified));
        let removed =
            SecondFactors::remove_within(work.as_mut(), &held, actor.audit_actor(), detail, context, now).await?;
        if removed {
            work.end_sessions(target.id, None, now).await?;
        }
        work.commit().await?;
        Ok(removed)
    }

    /// The staff actor behind a signed-in account, as stored now: `Ok(None)` when the
    /// account is gone, disabled, or not staff.
    pub async fn actor(&self, account: AccountId) -> Result<Option<StaffActor>, StoreError> {
        let Some(account) = self.accounts.find_account(account).await? else { return Ok(None) };
        Ok((account.role.is_staff() && account.disabled_at.is_none())
            .then_some(StaffActor { id: account.id, role: account.role }))
    }

    /// The target, if `actor` may take `action` on it.
    async fn target(&self, actor: &StaffActor, action: ConsoleAction, id: AccountId) -> Result<Account, ConsoleError> {
        let target = self.accounts.find_account(id).await?.ok_or(ConsoleError::NotFound)?;
        decide(actor, action, &target)?;
        Ok(target)
    }

    fn event(&self, actor: &StaffActor, target: AccountId, kind: AuditKind, context: &RequestContext) -> NewAuditEvent {
        NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(target),
            kind,
            actor: actor.audit_actor(),
            context: context.clone(),
            detail: None,
        }
    }

    /// Removes an upstream identity linked to the target (one the member says is not
    /// theirs, or linked to the wrong account), shown as `name` in the journal: the
    /// sessions it opened end, their applications told, and the target's RPPS number no
    /// longer links that provider by itself. `Ok(false)` when there was no such link.
    /// Audited.
    pub async fn unlink_upstream(
        &self,
        actor: &StaffActor,
        target: AccountId,
        upstream: &str,
        subject: &str,
        name: &str,
        context: &RequestContext,
    ) -> Result<bool, ConsoleError> {
        let target = self.target(actor, ConsoleAction::UnlinkUpstream, target).await?;
        let mut work = self.transactions.begin().await?;
        let held = hold_within(work.as_mut(), target.id, actor.reach()).await?;
        let mut event = self.event(actor, held.account.id, AuditKind::UpstreamUnlinked, context);
        event.detail = Some(AuditDetail::Upstream(name.to_owned()));
        if !crate::upstream::remove_link(work.as_mut(), upstream, subject, None, &event).await? {
            return Ok(false);
        }
        work.commit().await?;
        Ok(true)
    }

    /// Lifts a lock now. `Ok(false)` when the account was not locked.
    pub async fn unlock(
        &self,
        actor: &StaffActor,
        target: AccountId,
        context: &RequestContext,
    ) -> Result<bool, ConsoleError> {
        let target = self.target(actor, ConsoleAction::Unlock, target).await?;
        let event = self.event(actor, target.id, AuditKind::AccountUnlocked, context);
        Ok(self.credentials.unlock_account(target.id, event, actor.reach()).await?)
    }

    /// Mails the account its identifier.
    pub async fn send_identifier(
        &self,
        actor: &StaffActor,
        target: AccountId,
        context: &RequestContext,
    ) -> Result<(), ConsoleError> {
        self.send(actor, ConsoleAction::SendIdentifier, target, context).await
    }

    /// Mails the account a code to choose a new password.
    pub async fn send_reset_code(
        &self,
        actor: &StaffActor,
        target: AccountId,
        context: &RequestContext,
    ) -> Result<(), ConsoleError> {
        self.send(actor, ConsoleAction::SendResetCode, target, context).await
    }

    /// Mails the account its identifier and a temporary password.
    pub async fn issue_temporary_password(
        &self,
        actor: &StaffActor,
        target: AccountId,
        context: &RequestContext,
    ) -> Result<(), ConsoleError> {
        self.send(actor, ConsoleAction::IssueTemporaryPassword, target, context).await
    }

    /// Makes a temporary password for staff to hand over themselves — read out on the
    /// phone, or written from the desk's own mailbox — when the site's mail does not
    /// reach the member. Shown once, audited as shown; it sits beside the member's
    /// password, which keeps working, and replaces any earlier temporary one.
    ///
    /// `seen` is the temporary password's end the staff member's page showed (`None`:
    /// none): when another was made since — the same form sent again with Back, or a
    /// colleague's — nothing is made, and [`ConsoleError::Stale`] says so, so that the
    /// password already handed over keeps working.
    pub async fn hand_temporary_password(
        &self,
        actor: &StaffActor,
        target: AccountId,
        seen: Option<Timestamp>,
        context: &RequestContext,
    ) -> Result<HandedPassword, ConsoleError> {
        let account = self.target(actor, ConsoleAction::IssueTemporaryPassword, target).await?;
        let password = TemporaryPassword::generate();
        let now = self.clock.now();
        let expires_at = now.saturating_add(self.temporary_password_ttl).unwrap_or(now);
        let event = self.event(actor, account.id, AuditKind::TemporaryPasswordShown, context);
        let hash = password.hash();
        // Decided on the account as held: of two clicks at once, the second makes nothing.
        let provided = Provided::Replacing(seen);
        if !self
            .credentials
            .set_temporary_password(account.id, &hash, expires_at, provided, Some(event), actor.reach())
            .await?
        {
            return Err(match self.accounts.find_account(account.id).await? {
                Some(now) if actor.may(ConsoleAction::IssueTemporaryPassword, &now) => ConsoleError::Stale,
                Some(_) => Denied::StaffTarget.into(),
                None => ConsoleError::NotFound,
            });
        }
        Ok(HandedPassword { account, password, expires_at })
    }

    async fn send(
        &self,
        actor: &StaffActor,
        action: ConsoleAction,
        target: AccountId,
        context: &RequestContext,
    ) -> Result<(), ConsoleError> {
        let (kind, audit) = match action {
            ConsoleAction::SendResetCode => (MailKind::PasswordReset, AuditKind::ResetCodeSent),
            ConsoleAction::IssueTemporaryPassword => (MailKind::TemporaryPassword, AuditKind::TemporaryPasswordIssued),
            _ => (MailKind::ForgotIdentifier, AuditKind::IdentifierSent),
        };
        let target = self.target(actor, action, target).await?;
        let mail =
            NewMail { kind, account_id: Some(target.id), recipient: target.email.clone(), subject: MailSubject::None };
        self.account_changes
            .queue_staff_mail(&mail, self.event(actor, target.id, audit, context), actor.reach())
            .await?;
        Ok(())
    }

    /// Changes email and name. A new address revokes the account's pending codes and
    /// temporary password and mails a notice to the old address (see
    /// [`crate::account_changes::AccountChanges::change_details`]).
    pub async fn change_details(
        &self,
        actor: &StaffActor,
        target: AccountId,
        email: &str,
        (name, given_name, family_name): (&str, &str, &str),
        rpps: Option<&str>,
        context: &RequestContext,
    ) -> Result<(), ConsoleError> {
        let target = self.target(actor, ConsoleAction::ChangeDetails, target).await?;
        let email = EmailAddress::parse(email).map_err(AddMemberError::from)?;
        let (name, names) = NameParts::with_display(name, given_name, family_name).map_err(AddMemberError::from)?;
        // Not in the form: unchanged; empty: removed.
        let rpps = match rpps.map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(typed) => Some(Some(crate::account::Rpps::parse(typed).map_err(AddMemberError::from)?)),
        };
        let mut event = self.event(actor, target.id, AuditKind::DetailsChanged, context);
        if email != target.email {
            // In full: staff undoing a malicious change need the old address.
            event.detail = Some(AuditDetail::Email(target.email.clone(), email.clone()));
        }
        self.account_changes
            .change_details(target.id, &email, (&name, &names), rpps.as_ref().map(Option::as_ref), event, actor.reach())
            .await
            .map_err(AddMemberError::from)?;
        Ok(())
    }

    /// Disables (ending every session) or re-enables an account.
    pub async fn set_disabled(
        &self,
        actor: &StaffActor,
        target: AccountId,
        disabled: bool,
        context: &RequestContext,
    ) -> Result<(), ConsoleError> {
        let action = if disabled { ConsoleAction::Disable } else { ConsoleAction::Enable };
        let target = self.target(actor, action, target).await?;
        let kind = if disabled { AuditKind::AccountDisabled } else { AuditKind::AccountEnabled };
        let event = self.event(actor, target.id, kind, context);
        match self.account_changes.set_disabled(target.id, disabled, event, actor.reach()).await? {
            Guarded::Done => Ok(()),
            Guarded::LastAdministrator => Err(Denied::LastAdministrator.into()),
        }
    }

    /// Puts the account in a group (`join`) or takes it out of one. `Ok(false)` when
    /// there was nothing to do.
    pub async fn change_group(
        &self,
        actor: &StaffActor,
        target: AccountId,
        group: &str,
        join: bool,
        context: &RequestContext,
    ) -> Result<bool, ConsoleError> {
        let target = self.target(actor, ConsoleAction::ChangeGroups, target).await?;
        let name = GroupName::parse(group).map_err(|_| ConsoleError::UnknownGroup)?;
        let group = self.groups.find_group(&name).await?.ok_or(ConsoleError::UnknownGroup)?;
        let kind = if join { AuditKind::GroupJoined } else { AuditKind::GroupLeft };
        let mut event = self.event(actor, target.id, kind, context);
        event.detail = Some(AuditDetail::Group(name.clone()));
        Ok(self.memberships.set_membership(group.id, target.id, join, event).await?)
    }

    /// Changes a role.
    pub async fn set_role(
        &self,
        actor: &StaffActor,
        target: AccountId,
        role: Role,
        context: &RequestContext,
    ) -> Result<(), ConsoleError> {
        let target = self.target(actor, ConsoleAction::ChangeRole(role), target).await?;
        let mut event = self.event(actor, target.id, AuditKind::RoleChanged, context);
        event.detail = Some(AuditDetail::Role(target.role, role));
        match self.account_changes.set_role(target.id, role, event).await? {
            Guarded::Done => Ok(()),
            Guarded::LastAdministrator => Err(Denied::LastAdministrator.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: i64, role: Role) -> Account {
        Account::sample(id, role)
    }

    fn actor(id: i64, role: Role) -> StaffActor {
        StaffActor { id: AccountId::from_stored(id), role }
    }

    /// What the issue asks, written out case by case rather than computed like `decide`.
    fn expected(actor_role: Role, itself: bool, action: ConsoleAction, target_role: Role) -> Result<(), Denied> {
        let is_role_change =
            matches!(action, ConsoleAction::ChangeRole(_) | ConsoleAction::ChangeGroups | ConsoleAction::Erase);
        match (actor_role, is_role_change, target_role) {
            (Role::Assistance, true, _) => Err(Denied::AdminsOnly),
            (Role::Assistance, false, Role::Assistance | Role::Admin) => Err(Denied::StaffTarget),
            (Role::Assistance, false, Role::Member) => Ok(()),
            (_, _, _) => {
                // Leaving the admin role, or taking off one's own second factor.
                let not_on_itself = matches!(
                    action,
                    ConsoleAction::Disable
                        | ConsoleAction::ChangeRole(Role::Member | Role::Assistance)
                        | ConsoleAction::ResetSecondFactor
                        | ConsoleAction::Erase
                );
                if itself && not_on_itself {
                    Err(Denied::Themselves)
                } else if action == ConsoleAction::Erase && target_role == Role::Admin {
                    // An administrator is erased by the operator, or once no longer one.
                    Err(Denied::AdministratorErasure)
                } else {
                    Ok(())
                }
            }
        }
    }

    #[test]
    fn the_authority_matrix_holds_for_every_action_actor_and_target() {
        for actor_role in [Role::Assistance, Role::Admin] {
            for target_role in [Role::Member, Role::Assistance, Role::Admin] {
                for action in ConsoleAction::ALL {
                    let who = actor(1, actor_role);
                    let other = account(2, target_role);
                    assert_eq!(
                        decide(&who, action, &other),
                        expected(actor_role, false, action, target_role),
                        "{actor_role} → {target_role}: {action:?}"
                    );
                    if target_role == actor_role {
                        let itself = account(1, target_role);
                        assert_eq!(
                            decide(&who, action, &itself),
                            expected(actor_role, true, action, target_role),
                            "{actor_role} on itself: {action:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn assistance_cannot_touch_an_administrator_at_all() {
        let assistance = actor(1, Role::Assistance);
        let admin = account(2, Role::Admin);
        assert!(ConsoleAction::ALL.iter().all(|action| !assistance.may(*action, &admin)));
    }
}
