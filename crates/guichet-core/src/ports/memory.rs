//! Rows kept in memory behind the unit-of-work port, for the core's own unit tests: one
//! unit at a time (as SQLite's write lock allows), on a copy that only a commit keeps.
//! Never used outside tests: the store's contract suite holds the real databases to
//! what the port promises.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Conflict, EventId, HeldAccount, HeldOidcCode, Secours, StoreError, Transactions, Work};
use crate::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NewAccount, Role};
use crate::audit::{AuditKind, NewAuditEvent};
use crate::codes::StoredCode;
use crate::desk::{AssistanceRequest, CallSlot, CallSlotId, NewNote, NewRequest, RequestId, RequestState};
use crate::groups::{GroupId, GroupName};
use crate::lockout::ThrottleKey;
use crate::mail::{MailId, NewMail};
use crate::oidc::{ClientId, NewGrant, NewRefreshToken, SessionLink};
use crate::password::PasswordHash;
use crate::token::TokenHash;

#[derive(Debug, Clone, Default)]
pub(crate) struct Rows {
    pub accounts: HashMap<AccountId, HeldAccount>,
    pub events: Vec<(EventId, NewAuditEvent)>,
    pub mail: Vec<NewMail>,
    pub codes: HashMap<String, StoredCode>,
    /// Account, token hash, opened with a temporary password.
    pub sessions: Vec<(AccountId, String, bool)>,
    pub uncounted: u32,
    pub requests: Vec<AssistanceRequest>,
    pub notes: Vec<(RequestId, NewNote)>,
    /// Slots, with their link's token hash.
    pub slots: Vec<(CallSlot, String)>,
    /// Authorization codes, by hash.
    pub oidc_codes: HashMap<String, HeldOidcCode>,
    /// Group memberships.
    pub members: std::collections::HashSet<(GroupId, AccountId)>,
    /// Groups by name, the first one's id 1.
    pub groups: Vec<GroupName>,
    /// Grants, with when they were revoked.
    pub grants: Vec<(NewGrant, Option<Timestamp>)>,
    /// Refresh tokens, with when they were used.
    pub refresh_tokens: Vec<(NewRefreshToken, Option<Timestamp>)>,
    /// Sessions' links to clients.
    pub links: Vec<SessionLink>,
    /// TOTP secrets.
    pub totp: HashMap<AccountId, super::StoredTotp>,
    /// Backup codes: account, hash, used.
    pub backup_codes: Vec<(AccountId, String, Option<Timestamp>)>,
    /// Security keys and passkeys.
    pub keys: Vec<super::StoredKey>,
    /// Upstream links: provider, subject, account.
    pub upstream_links: Vec<(String, String, AccountId)>,
    /// Providers whose link a member removed: provider, account.
    pub upstream_refusals: Vec<(String, AccountId)>,
}

#[derive(Debug, Default)]
pub(crate) struct Memory(pub Arc<Mutex<Rows>>);

struct MemoryWork {
    rows: Rows,
    held: OwnedMutexGuard<Rows>,
}

#[async_trait]
impl Transactions for Memory {
    async fn begin(&self) -> Result<Box<dyn Work>, StoreError> {
        let held = Arc::clone(&self.0).lock_owned().await;
        Ok(Box::new(MemoryWork { rows: held.clone(), held }))
    }
}

impl MemoryWork {
    fn group_id(&self, name: &GroupName) -> Option<GroupId> {
        let index = self.rows.groups.iter().position(|g| g == name)?;
        Some(GroupId::from_stored(i64::try_from(index).unwrap() + 1))
    }

    fn account(&mut self, account: AccountId) -> &mut Account {
        &mut self.rows.accounts.get_mut(&account).unwrap().account
    }
}

#[async_trait]
impl Work for MemoryWork {
    async fn totp(&mut self, account: AccountId) -> Result<Option<super::StoredTotp>, StoreError> {
        Ok(self.rows.totp.get(&account).cloned())
    }
    async fn put_totp(&mut self, account: AccountId, sealed: &str, _at: Timestamp) -> Result<(), StoreError> {
        let totp = super::StoredTotp { sealed: sealed.to_owned(), confirmed_at: None, last_step: 0 };
        self.rows.totp.insert(account, totp);
        Ok(())
    }
    async fn confirm_totp(&mut self, account: AccountId, step: i64, at: Timestamp) -> Result<(), StoreError> {
        if let Some(totp) = self.rows.totp.get_mut(&account) {
            totp.confirmed_at = Some(at);
            totp.last_step = step;
        }
        Ok(())
    }
    async fn set_totp_step(&mut self, account: AccountId, step: i64) -> Result<(), StoreError> {
        if let Some(totp) = self.rows.totp.get_mut(&account) {
            totp.last_step = step;
        }
        Ok(())
    }
    async fn replace_backup_codes(
        &mut self,
        account: AccountId,
        hashes: &[TokenHash],
        _at: Timestamp,
    ) -> Result<(), StoreError> {
        self.rows.backup_codes.retain(|(owner, ..)| *owner != account);
        self.rows.backup_codes.extend(hashes.iter().map(|h| (account, h.as_str().to_owned(), None)));
        Ok(())
    }
    async fn use_backup_code(
        &mut self,
        account: AccountId,
        hash: &TokenHash,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let unused = self
            .rows
            .backup_codes
            .iter_mut()
            .find(|(owner, h, used)| *owner == account && h == hash.as_str() && used.is_none());
        Ok(unused.map(|(.., used)| *used = Some(at)).is_some())
    }
    async fn remove_second_factors(&mut self, account: AccountId) -> Result<u64, StoreError> {
        self.rows.totp.remove(&account);
        self.rows.backup_codes.retain(|(owner, ..)| *owner != account);
        let before = self.rows.keys.len();
        self.rows.keys.retain(|k| k.account != account);
        Ok(u64::try_from(before - self.rows.keys.len()).unwrap())
    }
    async fn insert_key(&mut self, key: &super::StoredKey) -> Result<bool, StoreError> {
        if self.rows.keys.iter().any(|k| k.credential_id == key.credential_id) {
            return Ok(false);
        }
        self.rows.keys.push(key.clone());
        Ok(true)
    }
    async fn used_key(&mut self, key: &super::StoredKey, passkey: &str, at: Timestamp) -> Result<bool, StoreError> {
        let found = self.rows.keys.iter_mut().find(|k| k == &key);
        Ok(found
            .map(|k| {
                k.passkey = passkey.to_owned();
                k.last_used_at = Some(at);
            })
            .is_some())
    }
    async fn count_keys(&mut self, account: AccountId) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.rows.keys.iter().filter(|k| k.account == account).count()).unwrap())
    }
    async fn remove_key(&mut self, account: AccountId, credential_id: &str) -> Result<bool, StoreError> {
        let before = self.rows.keys.len();
        self.rows.keys.retain(|k| !(k.account == account && k.credential_id == credential_id));
        Ok(self.rows.keys.len() < before)
    }
    async fn hold_account(&mut self, account: AccountId) -> Result<Option<HeldAccount>, StoreError> {
        Ok(self.rows.accounts.get(&account).cloned())
    }
    async fn set_rpps(&mut self, account: AccountId, rpps: Option<&crate::account::Rpps>) -> Result<(), StoreError> {
        if rpps.is_some()
            && self.rows.accounts.values().any(|h| h.account.id != account && h.account.rpps.as_ref() == rpps)
        {
            return Err(StoreError::Conflict(Conflict::Rpps));
        }
        let held = self.rows.accounts.get_mut(&account).ok_or(StoreError::Changed)?;
        held.account.rpps = rpps.cloned();
        Ok(())
    }
    async fn link_upstream(
        &mut self,
        upstream: &str,
        subject: &str,
        account: AccountId,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        if self.rows.upstream_links.iter().any(|(u, s, _)| u == upstream && s == subject) {
            return Ok(false);
        }
        self.rows.upstream_links.push((upstream.to_owned(), subject.to_owned(), account));
        self.rows.upstream_refusals.retain(|(u, a)| !(u == upstream && *a == account));
        Ok(true)
    }
    async fn used_upstream_link(
        &mut self,
        upstream: &str,
        subject: &str,
        account: AccountId,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.rows.upstream_links.iter().any(|(u, s, a)| u == upstream && s == subject && *a == account))
    }
    async fn unlink_upstream(
        &mut self,
        account: AccountId,
        upstream: &str,
        subject: &str,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        let before = self.rows.upstream_links.len();
        self.rows.upstream_links.retain(|(u, s, a)| !(u == upstream && s == subject && *a == account));
        let removed = self.rows.upstream_links.len() < before;
        if removed {
            self.rows.upstream_refusals.push((upstream.to_owned(), account));
        }
        Ok(removed)
    }
    async fn rpps_owners(
        &mut self,
        numbers: &[crate::account::Rpps],
    ) -> Result<Vec<(crate::account::Rpps, AccountId)>, StoreError> {
        Ok(self
            .rows
            .accounts
            .values()
            .filter_map(|h| h.account.rpps.clone().filter(|n| numbers.contains(n)).map(|n| (n, h.account.id)))
            .collect())
    }
    async fn upstream_link_removed(&mut self, upstream: &str, account: AccountId) -> Result<bool, StoreError> {
        Ok(self.rows.upstream_refusals.contains(&(upstream.to_owned(), account)))
    }
    async fn end_link_sessions(
        &mut self,
        _account: AccountId,
        _upstream: &str,
        _subject: &str,
        _keep: Option<&TokenHash>,
        _now: Timestamp,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn set_erase_at(&mut self, account: AccountId, at: Option<Timestamp>) -> Result<(), StoreError> {
        let held = self.rows.accounts.get_mut(&account).ok_or(StoreError::Changed)?;
        held.account.erase_at = at;
        Ok(())
    }
    async fn set_email_change(
        &mut self,
        account: AccountId,
        pending: Option<&EmailAddress>,
        code: Option<(&TokenHash, Timestamp)>,
    ) -> Result<(), StoreError> {
        let held = self.rows.accounts.get_mut(&account).ok_or(StoreError::Changed)?;
        held.account.email_pending = pending.cloned();
        held.email_code = code.map(|(hash, until)| (hash.clone(), until));
        Ok(())
    }
    async fn erase_account(&mut self, account: &Account, pseudonym: &str) -> Result<(), StoreError> {
        let id = account.id;
        self.rows.accounts.remove(&id);
        self.rows.mail.retain(|m| m.account_id != Some(id));
        self.rows.sessions.retain(|(owner, _, _)| *owner != id);
        for (_, event) in &mut self.rows.events {
            if event.account_id == Some(id) {
                event.account_id = None;
                event.detail = Some(crate::audit::AuditDetail::Text(pseudonym.to_owned()));
                event.context = crate::audit::RequestContext::default();
            }
        }
        Ok(())
    }
    async fn find_code(&mut self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError> {
        Ok(self.rows.codes.get(hash.as_str()).cloned())
    }
    async fn hold_code(&mut self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError> {
        Ok(self.rows.codes.get(hash.as_str()).cloned())
    }
    async fn count_events(
        &mut self,
        account: AccountId,
        kind: AuditKind,
        after: EventId,
        since: Timestamp,
    ) -> Result<u32, StoreError> {
        let counted = self
            .rows
            .events
            .iter()
            .filter(|(id, e)| e.account_id == Some(account) && e.kind == kind && *id > after && e.at >= since);
        Ok(u32::try_from(counted.count()).unwrap())
    }
    async fn last_event(&mut self, account: AccountId) -> Result<EventId, StoreError> {
        Ok(self.rows.events.iter().filter(|(_, e)| e.account_id == Some(account)).map(|(id, _)| *id).max().unwrap_or(0))
    }
    async fn record(&mut self, event: &NewAuditEvent) -> Result<EventId, StoreError> {
        let id = EventId::try_from(self.rows.events.len()).unwrap() + 1;
        self.rows.events.push((id, event.clone()));
        Ok(id)
    }
    async fn queue_mail(&mut self, mail: &NewMail, _now: Timestamp) -> Result<MailId, StoreError> {
        self.rows.mail.push(mail.clone());
        Ok(MailId::from_stored(i64::try_from(self.rows.mail.len()).unwrap()))
    }
    async fn set_lock(
        &mut self,
        account: AccountId,
        until: Option<Timestamp>,
        cleared_after: EventId,
    ) -> Result<(), StoreError> {
        let held = self.rows.accounts.get_mut(&account).unwrap();
        held.account.locked_until = until;
        held.failures_cleared_after = cleared_after;
        Ok(())
    }
    async fn set_logged_in(
        &mut self,
        account: AccountId,
        at: Timestamp,
        rehash: Option<&PasswordHash>,
    ) -> Result<(), StoreError> {
        let row = self.account(account);
        row.last_login_at = Some(at);
        if let Some(hash) = rehash {
            row.password_hash = Some(hash.clone());
        }
        Ok(())
    }
    async fn set_password(&mut self, account: AccountId, hash: &PasswordHash, at: Timestamp) -> Result<(), StoreError> {
        let row = self.account(account);
        row.password_hash = Some(hash.clone());
        row.temporary_password_hash = None;
        row.temporary_password_until = None;
        row.devices_trusted_after = at;
        Ok(())
    }
    async fn set_temporary_password(
        &mut self,
        account: AccountId,
        hash: &TokenHash,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let row = self.account(account);
        row.temporary_password_hash = Some(hash.clone());
        row.temporary_password_until = Some(expires_at);
        Ok(())
    }
    async fn insert_account(&mut self, new: &NewAccount, at: Timestamp) -> Result<Account, StoreError> {
        let accounts = || self.rows.accounts.values().map(|held| &held.account);
        if accounts().any(|a| a.identifier == new.identifier) {
            return Err(StoreError::Conflict(Conflict::Identifier));
        }
        if accounts().any(|a| a.email == new.email) {
            return Err(StoreError::Conflict(Conflict::Email));
        }
        let id = AccountId::from_stored(i64::try_from(self.rows.accounts.len()).unwrap() + 1);
        let account = Account {
            identifier: new.identifier.clone(),
            email: new.email.clone(),
            display_name: new.display_name.clone(),
            password_hash: new.password_hash.clone(),
            created_at: at,
            updated_at: at,
            devices_trusted_after: at,
            ..Account::sample(id.get(), new.role)
        };
        let held =
            HeldAccount { account: account.clone(), failures_cleared_after: 0, secours_code: None, email_code: None };
        self.rows.accounts.insert(id, held);
        Ok(account)
    }
    async fn accounts_named(&mut self, identifiers: &[Identifier], _hold: bool) -> Result<Vec<Account>, StoreError> {
        let mut found: Vec<Account> = self
            .rows
            .accounts
            .values()
            .filter(|held| identifiers.contains(&held.account.identifier))
            .map(|held| held.account.clone())
            .collect();
        found.sort_by_key(|a| a.id);
        Ok(found)
    }
    async fn address_owners(
        &mut self,
        addresses: &[EmailAddress],
    ) -> Result<Vec<(EmailAddress, AccountId)>, StoreError> {
        let accounts = self.rows.accounts.values().map(|held| &held.account);
        Ok(accounts
            .flat_map(|a| std::iter::once(&a.email).chain(a.recovery_email.as_ref()).map(move |e| (e.clone(), a.id)))
            .filter(|(e, _)| addresses.contains(e))
            .collect())
    }
    async fn groups_named(&mut self, names: &[GroupName]) -> Result<Vec<(GroupName, GroupId)>, StoreError> {
        Ok(names.iter().filter_map(|n| self.group_id(n).map(|id| (n.clone(), id))).collect())
    }
    async fn insert_group(
        &mut self,
        name: &GroupName,
        _description: &str,
        _at: Timestamp,
    ) -> Result<GroupId, StoreError> {
        if self.group_id(name).is_some() {
            return Err(StoreError::Conflict(Conflict::Group));
        }
        self.rows.groups.push(name.clone());
        Ok(GroupId::from_stored(i64::try_from(self.rows.groups.len()).unwrap()))
    }
    async fn memberships_of(&mut self, accounts: &[AccountId]) -> Result<Vec<(GroupId, AccountId)>, StoreError> {
        Ok(self.rows.members.iter().filter(|(_, a)| accounts.contains(a)).copied().collect())
    }
    async fn insert_accounts(&mut self, new: &[NewAccount], at: Timestamp) -> Result<Vec<AccountId>, StoreError> {
        let mut ids = Vec::with_capacity(new.len());
        for account in new {
            ids.push(self.insert_account(account, at).await?.id);
        }
        Ok(ids)
    }
    async fn record_all(&mut self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        for event in events {
            self.record(event).await?;
        }
        Ok(())
    }
    async fn join_all(&mut self, memberships: &[(GroupId, AccountId)]) -> Result<(), StoreError> {
        self.rows.members.extend(memberships.iter().copied());
        Ok(())
    }
    async fn set_member(&mut self, group: GroupId, account: AccountId, member: bool) -> Result<bool, StoreError> {
        Ok(if member {
            self.rows.members.insert((group, account))
        } else {
            self.rows.members.remove(&(group, account))
        })
    }
    async fn hold_active_administrators(&mut self) -> Result<Vec<AccountId>, StoreError> {
        let admins = self.rows.accounts.values().map(|held| &held.account);
        Ok(admins.filter(|a| a.role == Role::Admin && a.disabled_at.is_none()).map(|a| a.id).collect())
    }
    async fn email_owner(&mut self, email: &EmailAddress) -> Result<Option<AccountId>, StoreError> {
        let accounts = self.rows.accounts.values().map(|held| &held.account);
        Ok(accounts.filter(|a| a.email == *email).map(|a| a.id).next())
    }
    async fn set_secours(&mut self, account: AccountId, secours: &Secours, _at: Timestamp) -> Result<(), StoreError> {
        let taken = self.rows.accounts.values().any(|held| {
            held.account.id != account
                && secours.confirmed.is_some()
                && held.account.recovery_email == secours.confirmed
        });
        if taken {
            return Err(StoreError::Conflict(Conflict::Email));
        }
        let held = self.rows.accounts.get_mut(&account).unwrap();
        held.account.recovery_email = secours.confirmed.clone();
        held.account.recovery_email_pending = secours.pending.clone();
        held.secours_code = secours.code.clone();
        Ok(())
    }
    async fn secours_owner(&mut self, email: &EmailAddress) -> Result<Option<AccountId>, StoreError> {
        let accounts = self.rows.accounts.values().map(|held| &held.account);
        Ok(accounts.filter(|a| a.recovery_email.as_ref() == Some(email)).map(|a| a.id).next())
    }
    async fn set_disabled(
        &mut self,
        account: AccountId,
        disabled_at: Option<Timestamp>,
        _at: Timestamp,
    ) -> Result<(), StoreError> {
        self.account(account).disabled_at = disabled_at;
        Ok(())
    }
    async fn set_details(
        &mut self,
        account: AccountId,
        email: &EmailAddress,
        name: &DisplayName,
        names: &crate::account::NameParts,
        _at: Timestamp,
    ) -> Result<(), StoreError> {
        if self.rows.accounts.values().any(|held| held.account.id != account && held.account.email == *email) {
            return Err(StoreError::Conflict(Conflict::Email));
        }
        let row = self.account(account);
        row.names = names.clone();
        row.email = email.clone();
        row.display_name = name.clone();
        Ok(())
    }
    async fn set_role(&mut self, account: AccountId, role: Role, _at: Timestamp) -> Result<(), StoreError> {
        self.account(account).role = role;
        Ok(())
    }
    async fn revoke_temporary_password(&mut self, account: AccountId, at: Timestamp) -> Result<(), StoreError> {
        let row = self.account(account);
        row.temporary_password_hash = None;
        row.temporary_password_until = None;
        row.devices_trusted_after = at;
        Ok(())
    }
    async fn end_sessions(
        &mut self,
        account: AccountId,
        keep: Option<&TokenHash>,
        _now: Timestamp,
    ) -> Result<u64, StoreError> {
        let before = self.rows.sessions.len();
        self.rows.sessions.retain(|(a, token, _)| *a != account || Some(token.as_str()) == keep.map(TokenHash::as_str));
        Ok(u64::try_from(before - self.rows.sessions.len()).unwrap())
    }
    async fn end_forced_sessions(&mut self, account: AccountId) -> Result<u64, StoreError> {
        let before = self.rows.sessions.len();
        self.rows.sessions.retain(|(a, _, forced)| *a != account || !forced);
        Ok(u64::try_from(before - self.rows.sessions.len()).unwrap())
    }
    async fn clear_forced_change(&mut self, session: &TokenHash) -> Result<(), StoreError> {
        for (_, token, forced) in &mut self.rows.sessions {
            if token == session.as_str() {
                *forced = false;
            }
        }
        Ok(())
    }
    async fn uncount(&mut self, _key: &ThrottleKey, _at: Timestamp) -> Result<(), StoreError> {
        self.rows.uncounted += 1;
        Ok(())
    }
    async fn use_code(&mut self, hash: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        self.rows.codes.get_mut(hash.as_str()).unwrap().used_at = Some(at);
        Ok(())
    }
    async fn use_up_codes(&mut self, account: AccountId, at: Timestamp) -> Result<(), StoreError> {
        for code in self.rows.codes.values_mut().filter(|c| c.account_id == account && c.used_at.is_none()) {
            code.used_at = Some(at);
            code.voided_at = Some(at);
        }
        Ok(())
    }
    async fn hold_request(&mut self, id: RequestId) -> Result<Option<AssistanceRequest>, StoreError> {
        Ok(self.rows.requests.iter().find(|r| r.id == id).cloned())
    }
    async fn hold_open_request_of(&mut self, account: AccountId) -> Result<Option<AssistanceRequest>, StoreError> {
        let open =
            self.rows.requests.iter().filter(|r| r.account_id == Some(account) && r.state != RequestState::Closed);
        Ok(open.max_by_key(|r| r.id.get()).cloned())
    }
    async fn insert_request(&mut self, request: &NewRequest, now: Timestamp) -> Result<AssistanceRequest, StoreError> {
        let stored = AssistanceRequest {
            id: RequestId::from_stored(i64::try_from(self.rows.requests.len()).unwrap() + 1),
            reference: crate::desk::new_reference(),
            name: request.name.clone(),
            email: request.email.clone(),
            identifier: request.identifier.clone(),
            phone: request.phone.clone(),
            message: request.message.clone(),
            wants: request.wants,
            origin: request.origin,
            state: RequestState::New,
            account_id: request.account_id,
            assignee_id: None,
            created_at: now,
            updated_at: now,
        };
        self.rows.requests.push(stored.clone());
        Ok(stored)
    }
    async fn save_request(&mut self, request: &AssistanceRequest, at: Timestamp) -> Result<(), StoreError> {
        let stored = self.rows.requests.iter_mut().find(|r| r.id == request.id).unwrap();
        *stored = AssistanceRequest { updated_at: at, ..request.clone() };
        Ok(())
    }
    async fn insert_note(&mut self, request: RequestId, note: &NewNote, _at: Timestamp) -> Result<(), StoreError> {
        self.rows.notes.push((request, note.clone()));
        Ok(())
    }
    async fn find_slot(&mut self, hash: &TokenHash) -> Result<Option<CallSlot>, StoreError> {
        Ok(self.rows.slots.iter().find(|(_, token)| token == hash.as_str()).map(|(slot, _)| slot.clone()))
    }
    async fn request_slots(&mut self, request: RequestId) -> Result<Vec<CallSlot>, StoreError> {
        Ok(self.rows.slots.iter().filter(|(s, _)| s.request_id == request).map(|(s, _)| s.clone()).collect())
    }
    async fn insert_slot(
        &mut self,
        request: RequestId,
        (starts_at, ends_at): (Timestamp, Timestamp),
        _proposed_by: Option<AccountId>,
        _at: Timestamp,
    ) -> Result<CallSlotId, StoreError> {
        let id = CallSlotId::from_stored(i64::try_from(self.rows.slots.len()).unwrap() + 1);
        let slot = CallSlot { id, request_id: request, starts_at, ends_at, confirmed_at: None, withdrawn_at: None };
        self.rows.slots.push((slot, format!("slot-{}", id.get())));
        Ok(id)
    }
    async fn set_slot_token(&mut self, slot: CallSlotId, hash: &TokenHash) -> Result<(), StoreError> {
        for (stored, token) in &mut self.rows.slots {
            if stored.id == slot {
                *token = hash.as_str().to_owned();
            }
        }
        Ok(())
    }
    async fn save_slot(&mut self, slot: &CallSlot) -> Result<(), StoreError> {
        let stored = self.rows.slots.iter_mut().find(|(s, _)| s.id == slot.id).unwrap();
        stored.0 = slot.clone();
        Ok(())
    }
    async fn hold_oidc_code(
        &mut self,
        code: &TokenHash,
        client: &ClientId,
    ) -> Result<Option<HeldOidcCode>, StoreError> {
        Ok(self.rows.oidc_codes.get(code.as_str()).filter(|held| held.code.client == *client).cloned())
    }
    async fn set_oidc_code_used(&mut self, code: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        self.rows.oidc_codes.get_mut(code.as_str()).unwrap().used_at = Some(at);
        Ok(())
    }
    async fn set_oidc_code_reused(&mut self, code: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        self.rows.oidc_codes.get_mut(code.as_str()).unwrap().reused_at = Some(at);
        Ok(())
    }
    async fn revoke_family(&mut self, family: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        for (_, revoked_at) in self.rows.grants.iter_mut().filter(|(g, r)| g.code == *family && r.is_none()) {
            *revoked_at = Some(at);
        }
        self.rows.refresh_tokens.retain(|(t, _)| t.family != *family);
        Ok(())
    }
    async fn revoke_grant(&mut self, jti: &str, at: Timestamp) -> Result<(), StoreError> {
        for (_, revoked_at) in self.rows.grants.iter_mut().filter(|(g, r)| g.jti == jti && r.is_none()) {
            *revoked_at = Some(at);
        }
        Ok(())
    }
    async fn link_session(&mut self, link: &SessionLink) -> Result<bool, StoreError> {
        let live = self.rows.sessions.iter().any(|(_, token, _)| token == link.session.as_str());
        if live {
            self.rows.links.push(link.clone());
        }
        Ok(live)
    }
    async fn insert_refresh_token(&mut self, token: &NewRefreshToken) -> Result<bool, StoreError> {
        let live = token.session.as_ref().is_none_or(|s| self.rows.sessions.iter().any(|(_, t, _)| t == s.as_str()));
        if live {
            self.rows.refresh_tokens.push((token.clone(), None));
        }
        Ok(live)
    }
    async fn hold_refresh_token(
        &mut self,
        token: &TokenHash,
        client: &ClientId,
    ) -> Result<Option<(NewRefreshToken, Option<Timestamp>)>, StoreError> {
        Ok(self.rows.refresh_tokens.iter().find(|(t, _)| t.hash == *token && t.client == *client).cloned())
    }
    async fn set_refresh_token_used(&mut self, token: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        for (_, used_at) in self.rows.refresh_tokens.iter_mut().filter(|(t, _)| t.hash == *token) {
            *used_at = Some(at);
        }
        Ok(())
    }
    async fn insert_grant(&mut self, grant: &NewGrant, revoked_at: Option<Timestamp>) -> Result<(), StoreError> {
        self.rows.grants.push((grant.clone(), revoked_at));
        Ok(())
    }
    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        *self.held = std::mem::take(&mut self.rows);
        Ok(())
    }
}
