//! The storage contract of `guichet_core::ports`, run against SQLite and PostgreSQL.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first surprise (clippy.toml allows it only inside #[test] functions)"
)]

use std::sync::Arc;

use guichet_core::account::{Account, DisplayName, EmailAddress, Identifier, NameParts, NewAccount, Role};
use guichet_core::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use guichet_core::codes::{CodeError, CodePurpose, RecoveryCode, StoredCode, TemporaryPassword};
use guichet_core::credentials::{Admitted, Provided};
use guichet_core::desk::{Confirmation, NewNote, NewRequest, RequestChange, RequestId, RequestState, SlotState};
use guichet_core::groups::GroupName;
use guichet_core::import::{ImportOptions, ImportOutcome, ImportRow, Rejection};
use guichet_core::keys::ServerKey;
use guichet_core::lockout::{LockoutPolicy, ThrottleKey};
use guichet_core::mail::{MailKind, MailOutcome, MailState, MailSubject, NewMail};
use guichet_core::oidc::{
    Client, ClientId, LogoutOutcome, LogoutState, NewCode, NewGrant, NewRefreshToken, Rotation, SessionLink,
};
use guichet_core::password::PasswordHash;
use guichet_core::ports::{
    AccountFilter, AccountQuery, AccountState, AccountStore as _, AuditStore as _, CodeUse, Conflict, DeskStore as _,
    DeviceStore as _, FailureOutcome, GroupStore as _, Guarded, Health, KeyStore as _, OidcStore as _,
    OutboxStore as _, Page, Ports, Proof, Reach, RecoveryStore as _, SessionStore as _, StoreError, ThrottleStore as _,
    Transactions as _,
};
use guichet_core::session::NewSession;
use guichet_core::token::{PlainToken, TokenHash};
use guichet_core::{SignedDuration, Timestamp};
use guichet_store::SqlStore;
use guichet_store::testing::TestDatabase;

/// Runs each listed test on a fresh SQLite file and on a fresh PostgreSQL database.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = guichet_store::testing::TestDatabase::sqlite();
                    super::$name(db.store().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = guichet_store::testing::TestDatabase::postgres().await else { return };
                    let store = db.store().await;
                    super::$name(store.clone()).await;
                    store.close().await;
                }
            )*
        }
    };
}

on_both_backends!(
    the_database_answers,
    groups_hold_members_and_say_so,
    an_oidc_code_is_used_once_and_its_reuse_revokes_its_grants,
    oidc_clients_are_kept_listed_and_removed_with_what_they_hold,
    a_kept_secret_is_the_first_one_stored,
    the_access_epoch_moves_with_what_the_gate_caches,
    a_refused_login_is_audited_without_counting,
    a_members_own_change_keeps_this_session_and_queues_the_notice,
    events_are_recorded_one_by_one,
    finished_mail_is_forgotten_after_a_while,
    codes_are_revoked_or_forgotten,
    notes_are_listed_oldest_first,
    accounts_are_searched_by_identifier_email_or_name,
    accounts_are_listed_by_role_state_group_and_refused_mail_a_page_at_a_time,
    ending_other_sessions_is_recorded_with_how_many,
    staff_mail_is_queued_with_its_audit_line,
    failures_and_locks_are_counted_per_day,
    a_request_is_stored_with_its_receipt,
    a_request_change_comes_with_its_note,
    a_new_proposal_withdraws_the_slots_not_taken_up,
    a_slot_is_confirmed_once_and_withdraws_the_others,
    the_server_key_is_made_once_and_shared,
    writes_within_reach_of_members_only_refuse_staff_accounts,
    codes_and_temporary_passwords_bind_to_the_address_they_were_sent_to,
    a_member_promoted_to_staff_starts_afresh,
    an_address_change_voids_what_was_sent_to_the_old_one,
    accounts_are_found_by_identifier_email_and_id,
    duplicate_identifiers_and_emails_are_conflicts,
    failures_lock_the_account_at_the_threshold,
    failures_older_than_the_window_do_not_count,
    a_success_clears_the_failure_count,
    a_success_is_refused_while_locked,
    a_failure_while_locked_is_not_counted,
    unlocking_lifts_the_lock_and_the_count,
    concurrent_failures_lock_once_and_count_no_more_than_the_threshold,
    listing_locked_accounts_shows_only_them,
    sessions_expire_by_idleness_and_by_age,
    sessions_end_one_by_one_or_all_but_one,
    address_failures_are_counted_within_the_window,
    concurrent_counts_get_consecutive_answers,
    device_attempts_are_counted_per_mark_within_a_window,
    a_login_despite_a_lock_leaves_the_lock,
    events_are_listed_newest_first,
    locking_queues_the_notice_with_the_lock,
    claimed_mail_is_never_claimed_twice_while_leased,
    retried_mail_waits_for_its_next_attempt,
    finished_mail_is_logged_per_account,
    a_code_is_redeemed_once_however_many_try_at_once,
    codes_say_why_they_cannot_be_used,
    redeeming_resets_the_account_and_queues_the_notice,
    a_secours_address_is_proposed_confirmed_found_and_removed,
    a_secours_address_belongs_to_one_account,
    a_commit_that_queued_mail_is_announced,
    a_copy_is_queued_once_and_not_counted,
    an_undelivered_message_opens_one_request_per_account,
    the_desk_is_told_of_new_requests_and_confirmed_calls,
    a_temporary_password_opens_a_forced_session_until_a_password_is_chosen,
    an_import_creates_updates_and_rejects_in_one_batch,
    a_login_replaces_the_hash_in_the_same_statement,
    the_backlog_counts_what_waits_and_since_when,
    a_lease_is_renewed_only_by_its_holder_and_given_back_unsent,
    a_session_that_ends_tells_its_applications_and_takes_its_refresh_tokens,
    a_refresh_token_is_used_once_and_its_replay_revokes_its_family,
    second_factors_are_written_used_once_and_removed_together,
    a_ceremony_serves_once_and_only_as_it_was_made,
);

async fn a_lease_is_renewed_only_by_its_holder_and_given_back_unsent(store: SqlStore) {
    let account = add(&store, "marie").await;
    for _ in 0..2 {
        let mail = NewMail {
            kind: MailKind::PasswordChanged,
            account_id: Some(account.id),
            recipient: account.email.clone(),
            subject: MailSubject::None,
        };
        store.enqueue_mail(&mail, t0()).await.unwrap();
    }
    let mine = t0() + minutes(2);
    let claimed = store.claim_due_mail(t0(), mine, 10).await.unwrap_or_default();
    assert_eq!(claimed.len(), 2);
    // The lease ran out while this sender was busy; another one took the first message.
    let theirs = t0() + minutes(5);
    let taken = store.claim_due_mail(t0() + minutes(3), theirs, 1).await.unwrap_or_default();
    assert_eq!(taken.iter().map(|m| m.id).collect::<Vec<_>>(), [claimed[0].id]);
    assert_eq!(store.renew_lease(claimed[0].id, mine, t0() + minutes(6)).await.ok(), Some(false), "not ours any more");
    assert_eq!(store.renew_lease(taken[0].id, theirs, t0() + minutes(7)).await.ok(), Some(true), "its holder's");
    // Stopping, the first sender gives back what it still held: due for anyone at once.
    store.release_mail(&[claimed[1].id], mine).await.unwrap();
    let again = store.claim_due_mail(t0() + minutes(3), t0() + minutes(8), 10).await.unwrap_or_default();
    assert_eq!(
        again.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(),
        [(claimed[1].id, 1)],
        "the given-back attempt is not counted"
    );
}

async fn the_backlog_counts_what_waits_and_since_when(store: SqlStore) {
    assert_eq!(store.backlog().await.ok(), Some((0, None)));
    let account = add(&store, "marie").await;
    for at in [t0(), t0() + minutes(5)] {
        let mail = NewMail {
            kind: MailKind::PasswordChanged,
            account_id: Some(account.id),
            recipient: account.email.clone(),
            subject: MailSubject::None,
        };
        store.enqueue_mail(&mail, at).await.unwrap();
    }
    assert_eq!(store.backlog().await.ok(), Some((2, Some(t0()))));
}

fn import_row(identifier: &str, email: &str, groups: Option<&[&str]>) -> ImportRow {
    ImportRow {
        identifier: Identifier::parse(identifier).unwrap(),
        email: EmailAddress::parse(email).unwrap(),
        name: DisplayName::parse("Marie Durand").unwrap(),
        names: NameParts::parse("Marie", "Durand").unwrap(),
        role: Role::Member,
        groups: groups.map(|g| g.iter().map(|n| GroupName::parse(n).unwrap_or_else(|_| panic!("{n}"))).collect()),
        password_hash: Some(PasswordHash::from_phc("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0".into())),
        rpps: None,
    }
}

async fn an_import_creates_updates_and_rejects_in_one_batch(store: SqlStore) {
    let taken = add(&store, "paul").await;
    let rows = [
        import_row("marie", "marie@chu.example.fr", Some(&["bureau"])),
        import_row("zoe", taken.email.as_str(), None),
        import_row("paul", "paul.neuf@chu.example.fr", Some(&[])),
    ];
    let options = ImportOptions::default();
    let outcomes = importer(&store).import(&rows, options).await.unwrap();
    let bureau = GroupName::parse("bureau").unwrap();
    assert_eq!(
        outcomes,
        [
            ImportOutcome::Rejected(Rejection::MissingGroup(bureau)),
            ImportOutcome::Rejected(Rejection::EmailTaken),
            ImportOutcome::Rejected(Rejection::IdentifierTaken),
        ]
    );
    let options = ImportOptions { create_groups: true, update: true, invite: true, ..ImportOptions::default() };
    let outcomes = importer(&store).import(&rows, options).await.unwrap();
    assert_eq!(outcomes[0], ImportOutcome::Created);
    assert_eq!(outcomes[2], ImportOutcome::Updated);
    let marie =
        store.find_account_by_identifier(&rows[0].identifier).await.ok().flatten().unwrap_or_else(|| panic!("marie"));
    assert_eq!(marie.password_hash.as_ref().map(PasswordHash::as_phc), Some("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0"));
    assert_eq!(store.account_groups(marie.id).await.unwrap_or_default().len(), 1);
    assert!(
        store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default().is_empty(),
        "a password: no invitation"
    );
    assert_eq!(reload(&store, &taken).await.email.as_str(), "paul.neuf@chu.example.fr");
    assert_eq!(reload(&store, &taken).await.password_hash, taken.password_hash, "no --update-passwords: kept");
    let again = importer(&store).import(&rows[..1], options).await.unwrap();
    assert_eq!(again, [ImportOutcome::Unchanged]);
}

async fn a_login_replaces_the_hash_in_the_same_statement(store: SqlStore) {
    let account = add(&store, "marie").await;
    let newer = PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2huZXc".into());
    let proof = Proof::Password(some_hash());
    let done = rules(&store).record_login_success(account.id, &proof, Some(&newer), false, &[], &context(), t0()).await;
    assert_eq!(done.ok(), Some(Admitted::In));
    assert_eq!(reload(&store, &account).await.password_hash, Some(newer));
    let stale = rules(&store).record_login_success(account.id, &proof, None, false, &[], &context(), t0()).await;
    assert_eq!(stale.ok(), Some(Admitted::No), "the old hash no longer proves anything");
}

fn personal() -> EmailAddress {
    EmailAddress::parse("marie.durand@perso.example.org").unwrap()
}

async fn a_secours_address_is_proposed_confirmed_found_and_removed(store: SqlStore) {
    let account = add(&store, "marie").await;
    secours(&store).propose_recovery_email(account.id, &personal(), t0()).await.unwrap();
    let queued = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default();
    assert_eq!(
        queued.iter().map(|m| (m.kind, m.recipient.clone())).collect::<Vec<_>>(),
        [(MailKind::RecoveryEmailConfirmation, personal())]
    );
    assert_eq!(reload(&store, &account).await.recovery_email_pending, Some(personal()));
    let code = RecoveryCode::generate();
    let elsewhere = EmailAddress::parse("autre@perso.example.org").unwrap();
    let later = t0() + minutes(60);
    assert_eq!(
        secours(&store).set_recovery_email_code(account.id, &code.hash(), later, &elsewhere).await.ok(),
        Some(false)
    );
    assert_eq!(
        secours(&store).set_recovery_email_code(account.id, &code.hash(), later, &personal()).await.ok(),
        Some(true)
    );
    let event = |kind| NewAuditEvent { at: t0(), ..staff_event(&account, kind) };
    let wrong = secours(&store)
        .confirm_recovery_email(account.id, &RecoveryCode::generate().hash(), event(AuditKind::RecoveryEmailConfirmed))
        .await;
    assert_eq!(wrong.ok(), Some(Err(CodeError::Invalid)));
    let late = NewAuditEvent { at: later, ..event(AuditKind::RecoveryEmailConfirmed) };
    assert_eq!(
        secours(&store).confirm_recovery_email(account.id, &code.hash(), late).await.ok(),
        Some(Err(CodeError::Expired))
    );
    let confirmed = secours(&store)
        .confirm_recovery_email(account.id, &code.hash(), event(AuditKind::RecoveryEmailConfirmed))
        .await;
    assert_eq!(confirmed.ok(), Some(Ok(personal())));
    let after = reload(&store, &account).await;
    assert_eq!((after.recovery_email, after.recovery_email_pending), (Some(personal()), None));
    let again = secours(&store)
        .confirm_recovery_email(account.id, &code.hash(), event(AuditKind::RecoveryEmailConfirmed))
        .await;
    assert_eq!(again.ok(), Some(Err(CodeError::Invalid)), "used once");
    // Found by either address, its own first; codes may be bound to either.
    let found = store.find_account_by_any_address(&personal()).await.ok().flatten().map(|a| a.id);
    assert_eq!(found, Some(account.id));
    assert_eq!(store.find_account_by_email(&personal()).await.ok().flatten().map(|a| a.id), None);
    let stored = StoredCode {
        account_id: account.id,
        purpose: CodePurpose::Reset,
        created_at: t0(),
        expires_at: later,
        used_at: None,
        voided_at: None,
    };
    assert_eq!(store.insert_code(&RecoveryCode::generate().hash(), &stored, &personal()).await.ok(), Some(true));
    let notices = store.claim_due_mail(t0() + minutes(3), t0() + minutes(5), 10).await.unwrap_or_default();
    assert!(notices.iter().any(|m| m.kind == MailKind::RecoveryEmailChanged && m.recipient == account.email));
    assert_eq!(
        secours(&store).remove_recovery_email(account.id, event(AuditKind::RecoveryEmailRemoved)).await.ok(),
        Some(true)
    );
    assert_eq!(
        secours(&store).remove_recovery_email(account.id, event(AuditKind::RecoveryEmailRemoved)).await.ok(),
        Some(false)
    );
    assert_eq!(reload(&store, &account).await.recovery_email, None);
    assert!(store.find_account_by_any_address(&personal()).await.ok().flatten().is_none());
}

async fn a_secours_address_belongs_to_one_account(store: SqlStore) {
    let marie = add(&store, "marie").await;
    let paul = add(&store, "paul").await;
    // Another account's address: stored, answered like any other, and no code leaves.
    secours(&store).propose_recovery_email(marie.id, &paul.email, t0()).await.unwrap();
    assert!(store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default().is_empty());
    // Both propose it before either confirms: the first confirmation wins.
    let mut codes = Vec::new();
    for who in [&marie, &paul] {
        secours(&store).propose_recovery_email(who.id, &personal(), t0()).await.unwrap();
        let code = RecoveryCode::generate();
        secours(&store).set_recovery_email_code(who.id, &code.hash(), t0() + minutes(60), &personal()).await.ok();
        codes.push(code);
    }
    let confirm = |who: &Account, code: &RecoveryCode| {
        let event = NewAuditEvent { at: t0(), ..staff_event(who, AuditKind::RecoveryEmailConfirmed) };
        let hash = code.hash();
        let store = store.clone();
        let id = who.id;
        async move { secours(&store).confirm_recovery_email(id, &hash, event).await }
    };
    assert_eq!(confirm(&marie, &codes[0]).await.ok(), Some(Ok(personal())));
    let second = confirm(&paul, &codes[1]).await;
    assert!(matches!(second, Err(StoreError::Conflict(Conflict::Email))), "{second:?}");
    assert_eq!(reload(&store, &paul).await.recovery_email, None);
    // Nor can it become another account's own address.
    let event = staff_event(&paul, AuditKind::DetailsChanged);
    let name = DisplayName::parse("Paul").unwrap();
    let changed = changes(&store)
        .change_details(paul.id, &personal(), (&name, &NameParts::default()), None, event, Reach::Anyone)
        .await;
    assert!(matches!(changed, Err(StoreError::Conflict(Conflict::Email))), "{changed:?}");
}

async fn a_commit_that_queued_mail_is_announced(store: SqlStore) {
    let announced = store.mail_queued();
    let account = add(&store, "marie").await;
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), announced.notified()).await;
    assert!(quiet.is_err(), "creating an account queues no mail, and says nothing");
    let mail = NewMail {
        kind: MailKind::PasswordReset,
        account_id: Some(account.id),
        recipient: account.email.clone(),
        subject: MailSubject::None,
    };
    let original = store.enqueue_mail(&mail, t0()).await.unwrap();
    let told = tokio::time::timeout(std::time::Duration::from_secs(1), announced.notified()).await;
    assert!(told.is_ok(), "the commit that queued mail tells the postman");
    store.queue_copy(original, account.id, MailKind::PasswordReset, &personal(), t0()).await.unwrap();
    let told = tokio::time::timeout(std::time::Duration::from_secs(1), announced.notified()).await;
    assert!(told.is_ok(), "so does a copy");
}

async fn a_copy_is_queued_once_and_not_counted(store: SqlStore) {
    let account = add(&store, "marie").await;
    let original = store
        .enqueue_mail(
            &NewMail {
                kind: MailKind::PasswordReset,
                account_id: Some(account.id),
                recipient: account.email.clone(),
                subject: MailSubject::None,
            },
            t0(),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        store.queue_copy(original, account.id, MailKind::PasswordReset, &personal(), t0()).await.unwrap();
    }
    let claimed = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default();
    assert_eq!(claimed.len(), 2, "the original and one copy");
    let copy = claimed.iter().find(|m| m.copy_of.is_some()).unwrap_or_else(|| panic!("no copy"));
    assert_eq!((copy.copy_of, &copy.recipient), (Some(original), &personal()));
    for mail in &claimed {
        let sent = MailOutcome::Sent { answer: "250 ok".into() };
        store.finish_mail(mail.id, Some(account.id), &sent.record(t0())).await.unwrap();
    }
    assert_eq!(
        store.count_sent_mail(account.id, MailKind::PasswordReset, t0()).await.ok(),
        Some(1),
        "copies not counted"
    );
}

async fn an_undelivered_message_opens_one_request_per_account(store: SqlStore) {
    let account = add(&store, "marie").await;
    let desk = EmailAddress::parse("assistance@reseau.example").unwrap();
    let bounce = |message: &str| NewRequest {
        wants: None,
        message: message.to_owned(),
        phone: String::new(),
        address: None,
        origin: guichet_core::desk::RequestOrigin::Undelivered,
        ..written_request(Some(&account))
    };
    let first = desk_rules(&store).report_undelivered(&bounce("premier rebond"), Some(&desk), t0()).await.unwrap();
    let second = desk_rules(&store).report_undelivered(&bounce("second rebond"), Some(&desk), t0()).await.unwrap();
    assert_eq!(first, second, "added to the open request");
    let notes = store.request_notes(first).await.unwrap_or_default();
    assert!(notes.iter().any(|n| n.body == "second rebond" && n.author_id.is_none()));
    let mail = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default();
    assert_eq!(
        mail.iter().map(|m| (m.kind, m.recipient.clone())).collect::<Vec<_>>(),
        [(MailKind::DeskNewRequest, desk.clone())],
        "no receipt to the member (the mail does not reach them), one notice to the desk"
    );
    let note = NewNote { author_id: None, body: "close".into() };
    desk_rules(&store).update_request(first, RequestChange::State(RequestState::Closed), &note, t0()).await.unwrap();
    let third = desk_rules(&store).report_undelivered(&bounce("troisième"), None, t0()).await.unwrap();
    assert_ne!(third, first, "a closed request is not reopened: a new one");
}

async fn the_desk_is_told_of_new_requests_and_confirmed_calls(store: SqlStore) {
    let desk = EmailAddress::parse("assistance@reseau.example").unwrap();
    let created = desk_rules(&store).create_request(&written_request(None), Some(&desk), t0()).await.unwrap();
    assert_eq!(created.wants, Some(guichet_core::desk::Wants::Call), "what the writer asked for is kept");
    let staff = add(&store, "desk").await;
    let note = NewNote { author_id: Some(staff.id), body: "proposé".into() };
    let slots = [(t0() + minutes(60), t0() + minutes(90))];
    desk_rules(&store)
        .propose_slots(created.id, &slots, "04 91 00 00 00", &note, true, &slot_key(), Reach::Anyone, t0())
        .await
        .unwrap();
    assert_eq!(store.find_request(created.id).await.ok().flatten().map(|r| r.phone).as_deref(), Some("04 91 00 00 00"));
    let slot = store.request_slots(created.id).await.unwrap_or_default().remove(0);
    // The link works as soon as the slot is proposed, before any mail leaves.
    let token = slot.link_token(&slot_key());
    desk_rules(&store).confirm_slot(&token.hash(), Some(&desk), "confirmé", true, t0()).await.unwrap();
    let mail = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default();
    let to_desk: Vec<(MailKind, MailSubject)> =
        mail.iter().filter(|m| m.recipient == desk).map(|m| (m.kind, m.subject)).collect();
    assert_eq!(
        to_desk,
        [
            (MailKind::DeskNewRequest, MailSubject::Request(created.id)),
            (MailKind::DeskCallConfirmed, MailSubject::Slot(slot.id))
        ]
    );
}

async fn a_temporary_password_opens_a_forced_session_until_a_password_is_chosen(store: SqlStore) {
    let account = add(&store, "marie").await;
    let temporary = TemporaryPassword::generate().hash();
    let later = t0() + minutes(60);
    let shown = staff_event(&account, AuditKind::TemporaryPasswordShown);
    let set = rules(&store)
        .set_temporary_password(account.id, &temporary, later, Provided::Always, Some(shown), Reach::MembersOnly)
        .await;
    assert_eq!(set.ok(), Some(true));
    let proof = Proof::Temporary(temporary.clone());
    assert_eq!(
        rules(&store)
            .record_login_success(account.id, &proof, None, true, &[], &context(), later)
            .await
            .ok()
            .map(|a| a == Admitted::In),
        Some(false),
        "expired"
    );
    assert_eq!(
        rules(&store)
            .record_login_success(account.id, &proof, None, true, &[], &context(), t0())
            .await
            .ok()
            .map(|a| a == Admitted::In),
        Some(true)
    );
    assert_eq!(
        rules(&store)
            .record_login_success(account.id, &proof, None, true, &[], &context(), t0())
            .await
            .ok()
            .map(|a| a == Admitted::In),
        Some(true),
        "not used up by a login"
    );
    let password = Proof::Password(some_hash());
    assert_eq!(
        rules(&store)
            .record_login_success(account.id, &password, None, false, &[], &context(), t0())
            .await
            .ok()
            .map(|a| a == Admitted::In),
        Some(true),
        "the password too"
    );
    let token = PlainToken::generate();
    let session = NewSession { must_change_password: true, ..new_session(&account, &token) };
    store.create_session(&session).await.unwrap();
    assert_eq!(
        store.find_session(&token.hash(), t0()).await.ok().flatten().map(|s| s.must_change_password),
        Some(true)
    );
    let newer = PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2huZXc".into());
    assert_eq!(
        rules(&store).change_password(account.id, &newer, &token.hash(), true, &context(), later).await.ok(),
        Some(false),
        "gone"
    );
    assert_eq!(
        rules(&store).change_password(account.id, &newer, &token.hash(), true, &context(), t0()).await.ok(),
        Some(true)
    );
    let after = reload(&store, &account).await;
    assert_eq!((after.temporary_password_hash, after.temporary_password_until), (None, None));
    assert_eq!(
        store.find_session(&token.hash(), t0()).await.ok().flatten().map(|s| s.must_change_password),
        Some(false)
    );
    assert_eq!(
        rules(&store)
            .record_login_success(account.id, &proof, None, true, &[], &context(), t0())
            .await
            .ok()
            .map(|a| a == Admitted::In),
        Some(false),
        "used up"
    );
}

/// The core's rules of passwords and locks, over this store's units of work: what
/// they promise (40 racing failures lock once) holds on the real database.
fn rules(store: &SqlStore) -> guichet_core::credentials::Credentials {
    guichet_core::credentials::Credentials::of(&guichet_core::ports::Ports::of(Arc::new(store.clone())))
}

/// The core's desk rules, over this store's units of work.
fn desk_rules(store: &SqlStore) -> guichet_core::desk::DeskRules {
    guichet_core::desk::DeskRules::of(&guichet_core::ports::Ports::of(Arc::new(store.clone())))
}

/// The core's account changes, over this store's units of work.
fn changes(store: &SqlStore) -> guichet_core::account_changes::AccountChanges {
    guichet_core::account_changes::AccountChanges::of(&guichet_core::ports::Ports::of(Arc::new(store.clone())))
}

/// The core's code and grant rules, over this store's units of work.
fn grants(store: &SqlStore) -> guichet_core::oidc::Grants {
    guichet_core::oidc::Grants::of(&guichet_core::ports::Ports::of(Arc::new(store.clone())))
}

/// The core's secours-address rules, over this store's units of work.
fn secours(store: &SqlStore) -> guichet_core::secours::SecoursRules {
    guichet_core::secours::SecoursRules::of(&guichet_core::ports::Ports::of(Arc::new(store.clone())))
}

/// The key the slots' links are derived from, in these tests.
fn slot_key() -> guichet_core::keys::ServerKey {
    guichet_core::keys::ServerKey::from_bytes(&[7; 32]).unwrap()
}

/// The core's import, over this store's units of work.
fn importer(store: &SqlStore) -> guichet_core::import::Importer {
    let ports = guichet_core::ports::Ports::of(Arc::new(store.clone()));
    guichet_core::import::Importer::of(&ports, Arc::new(guichet_core::clock::ManualClock::new(t0())))
}

/// The core's group memberships, over this store's units of work.
fn groups(store: &SqlStore) -> guichet_core::groups::Groups {
    let ports = guichet_core::ports::Ports::of(Arc::new(store.clone()));
    guichet_core::groups::Groups::new(&ports, Arc::new(guichet_core::clock::ManualClock::new(t0())))
}

fn t0() -> Timestamp {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

fn minutes(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

fn context() -> RequestContext {
    RequestContext::new(Some("10.0.0.7".parse().unwrap()), Some("TestBrowser/1"))
}

fn policy() -> LockoutPolicy {
    LockoutPolicy { threshold: 3, window: minutes(15), duration: minutes(60) }
}

async fn add(store: &SqlStore, identifier: &str) -> Account {
    let new = NewAccount {
        identifier: Identifier::parse(identifier).unwrap(),
        email: EmailAddress::parse(&format!("{identifier}@chu.example.fr")).unwrap(),
        display_name: DisplayName::parse("Marie Durand").unwrap(),
        names: NameParts::parse("Marie", "Durand").unwrap(),
        role: Role::Member,
        password_hash: Some(some_hash()),
        rpps: None,
    };
    let event = operator_event(None, AuditKind::AccountCreated);
    changes(store).create_account(&new, event, None).await.unwrap_or_else(|e| panic!("create {identifier}: {e:?}"))
}

async fn reload(store: &SqlStore, account: &Account) -> Account {
    store.find_account(account.id).await.ok().flatten().unwrap_or_else(|| panic!("account {:?} vanished", account.id))
}

async fn fail(store: &SqlStore, account: &Account, at: Timestamp) -> FailureOutcome {
    rules(store).record_login_failure(account.id, &policy(), &context(), at).await.unwrap()
}

/// A login with a password at `at` (despite a lock, for a known browser, when
/// `despite_lock`): whether it was recorded.
async fn succeed(store: &SqlStore, account: &Account, despite_lock: bool, at: Timestamp) -> Option<bool> {
    let proof = Proof::Password(some_hash());
    rules(store)
        .record_login_success(account.id, &proof, None, despite_lock, &[], &context(), at)
        .await
        .ok()
        .map(|a| a == Admitted::In)
}

async fn accounts_are_found_by_identifier_email_and_id(store: SqlStore) {
    let created = add(&store, "marie.durand").await;
    let by_identifier = store.find_account_by_identifier(&created.identifier).await.ok().flatten();
    let by_email = store.find_account_by_email(&created.email).await.ok().flatten();
    assert_eq!(by_identifier.map(|a| a.id), Some(created.id));
    assert_eq!(by_email.map(|a| a.id), Some(created.id));
    assert_eq!(created.display_name.as_str(), "Marie Durand");
    assert_eq!(created.created_at, t0());
    let unknown = Identifier::parse("nobody").unwrap();
    assert!(store.find_account_by_identifier(&unknown).await.ok().flatten().is_none());
    assert_eq!(store.count_accounts().await.ok(), Some(1));
}

async fn duplicate_identifiers_and_emails_are_conflicts(store: SqlStore) {
    let first = add(&store, "marie").await;
    let mut same_identifier = NewAccount {
        identifier: first.identifier.clone(),
        email: EmailAddress::parse("other@chu.example.fr").unwrap(),
        display_name: DisplayName::default(),
        names: NameParts::default(),
        role: Role::Member,
        password_hash: None,
        rpps: None,
    };
    let event = operator_event(None, AuditKind::AccountCreated);
    let err = changes(&store).create_account(&same_identifier, event.clone(), None).await.err();
    assert!(matches!(err, Some(StoreError::Conflict(Conflict::Identifier))), "{err:?}");
    same_identifier.identifier = Identifier::parse("marie2").unwrap();
    same_identifier.email = first.email.clone();
    let err = changes(&store).create_account(&same_identifier, event.clone(), None).await.err();
    assert!(matches!(err, Some(StoreError::Conflict(Conflict::Email))), "{err:?}");
    // An RPPS number is one account's; accounts without one are many.
    let rpps = guichet_core::account::Rpps::parse("10001234567").unwrap();
    same_identifier.email = EmailAddress::parse("marie2@chu.example.fr").unwrap();
    same_identifier.rpps = Some(rpps.clone());
    let holder = changes(&store).create_account(&same_identifier, event.clone(), None).await.unwrap();
    assert_eq!(reload(&store, &holder).await.rpps, Some(rpps));
    same_identifier.identifier = Identifier::parse("marie3").unwrap();
    same_identifier.email = EmailAddress::parse("marie3@chu.example.fr").unwrap();
    let err = changes(&store).create_account(&same_identifier, event, None).await.err();
    assert!(matches!(err, Some(StoreError::Conflict(Conflict::Rpps))), "{err:?}");
    assert_eq!(reload(&store, &first).await.rpps, None);
}

async fn failures_lock_the_account_at_the_threshold(store: SqlStore) {
    let account = add(&store, "marie").await;
    assert_eq!(fail(&store, &account, t0()).await, FailureOutcome::Counted { failures: 1 });
    assert_eq!(fail(&store, &account, t0() + minutes(1)).await, FailureOutcome::Counted { failures: 2 });
    let until = t0() + minutes(2) + minutes(60);
    assert_eq!(fail(&store, &account, t0() + minutes(2)).await, FailureOutcome::Locked { until });
    assert_eq!(reload(&store, &account).await.locked_until, Some(until));
}

async fn failures_older_than_the_window_do_not_count(store: SqlStore) {
    let account = add(&store, "marie").await;
    fail(&store, &account, t0()).await;
    fail(&store, &account, t0() + minutes(1)).await;
    assert_eq!(fail(&store, &account, t0() + minutes(16)).await, FailureOutcome::Counted { failures: 2 });
}

async fn a_success_clears_the_failure_count(store: SqlStore) {
    let account = add(&store, "marie").await;
    fail(&store, &account, t0()).await;
    fail(&store, &account, t0()).await;
    assert_eq!(succeed(&store, &account, false, t0()).await, Some(true));
    assert_eq!(fail(&store, &account, t0()).await, FailureOutcome::Counted { failures: 1 });
    assert_eq!(reload(&store, &account).await.last_login_at, Some(t0()));
}

async fn a_success_is_refused_while_locked(store: SqlStore) {
    let account = add(&store, "marie").await;
    for _ in 0..3 {
        fail(&store, &account, t0()).await;
    }
    assert_eq!(succeed(&store, &account, false, t0() + minutes(59)).await, Some(false));
    assert_eq!(reload(&store, &account).await.last_login_at, None);
    assert_eq!(succeed(&store, &account, false, t0() + minutes(60)).await, Some(true));
    assert_eq!(reload(&store, &account).await.locked_until, None);
}

async fn a_failure_while_locked_is_not_counted(store: SqlStore) {
    let account = add(&store, "marie").await;
    for _ in 0..3 {
        fail(&store, &account, t0()).await;
    }
    assert_eq!(fail(&store, &account, t0() + minutes(5)).await, FailureOutcome::AlreadyLocked);
    let until = reload(&store, &account).await.locked_until;
    assert_eq!(until, Some(t0() + minutes(60)), "a refused attempt must not extend the lock");
}

async fn unlocking_lifts_the_lock_and_the_count(store: SqlStore) {
    let account = add(&store, "marie").await;
    for _ in 0..3 {
        fail(&store, &account, t0()).await;
    }
    let event = NewAuditEvent {
        at: t0() + minutes(1),
        account_id: Some(account.id),
        kind: AuditKind::AccountUnlocked,
        actor: Actor::Operator,
        context: RequestContext::default(),
        detail: None,
    };
    assert_eq!(rules(&store).unlock_account(account.id, event.clone(), Reach::Anyone).await.ok(), Some(true));
    assert_eq!(reload(&store, &account).await.locked_until, None);
    assert_eq!(fail(&store, &account, t0() + minutes(2)).await, FailureOutcome::Counted { failures: 1 });
    assert_eq!(
        rules(&store).unlock_account(account.id, event, Reach::Anyone).await.ok(),
        Some(false),
        "it was not locked any more"
    );
}

/// Forty wrong passwords at once, spread over `stores` (instances): one locks, two more
/// are counted, the rest find the account locked.
async fn forty_failures_lock_once(stores: &[Arc<SqlStore>], account: &Account) {
    let attempts = (0..40).map(|n| {
        let store = Arc::clone(&stores[n % stores.len()]);
        let id = account.id;
        tokio::spawn(async move { rules(&store).record_login_failure(id, &policy(), &context(), t0()).await })
    });
    let outcomes: Vec<FailureOutcome> =
        futures_util::future::join_all(attempts).await.into_iter().map(|joined| joined.unwrap().unwrap()).collect();
    let locked = outcomes.iter().filter(|o| matches!(o, FailureOutcome::Locked { .. })).count();
    let counted = outcomes.iter().filter(|o| matches!(o, FailureOutcome::Counted { .. })).count();
    assert_eq!((locked, counted), (1, 2), "{outcomes:?}");
}

async fn concurrent_failures_lock_once_and_count_no_more_than_the_threshold(store: SqlStore) {
    let account = add(&store, "marie").await;
    let store = Arc::new(store);
    forty_failures_lock_once(&[Arc::clone(&store)], &account).await;
    let events = store.account_events(account.id, 100).await.unwrap();
    let of = |kind| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(of(AuditKind::LoginFailed), 3);
    assert_eq!(of(AuditKind::AccountLocked), 1);
    assert_eq!(of(AuditKind::LoginRefusedLocked), 37);
}

async fn listing_locked_accounts_shows_only_them(store: SqlStore) {
    let locked = add(&store, "locked").await;
    add(&store, "open").await;
    for _ in 0..3 {
        fail(&store, &locked, t0()).await;
    }
    let names = |accounts: Vec<Account>| accounts.into_iter().map(|a| a.identifier.to_string()).collect::<Vec<_>>();
    let all = store.list_accounts(AccountFilter::default()).await.unwrap();
    assert_eq!(names(all), ["locked", "open"]);
    let now_locked = store.list_accounts(AccountFilter { locked_at: Some(t0()) }).await.unwrap();
    assert_eq!(names(now_locked), ["locked"]);
    let later = store.list_accounts(AccountFilter { locked_at: Some(t0() + minutes(61)) }).await.unwrap();
    assert!(later.is_empty());
}

fn new_session(account: &Account, token: &PlainToken) -> NewSession {
    NewSession {
        token_hash: token.hash(),
        account_id: account.id,
        created_at: t0(),
        idle_expires_at: t0() + minutes(30),
        expires_at: t0() + minutes(12 * 60),
        context: context(),
        must_change_password: false,
        factors: guichet_core::second_factor::Factors::PASSWORD,
        upstream: None,
    }
}

async fn sessions_expire_by_idleness_and_by_age(store: SqlStore) {
    let account = add(&store, "marie").await;
    let token = PlainToken::generate();
    store.create_session(&new_session(&account, &token)).await.unwrap();
    let found = store.find_session(&token.hash(), t0() + minutes(29)).await.ok().flatten();
    assert_eq!(found.map(|s| s.account_id), Some(account.id));
    assert!(store.find_session(&token.hash(), t0() + minutes(30)).await.ok().flatten().is_none(), "idle");
    store.touch_session(&token.hash(), t0() + minutes(29), t0() + minutes(12 * 60 + 5)).await.unwrap();
    assert!(store.find_session(&token.hash(), t0() + minutes(60)).await.ok().flatten().is_some(), "touched");
    assert!(store.find_session(&token.hash(), t0() + minutes(12 * 60)).await.ok().flatten().is_none(), "absolute");
    assert_eq!(store.purge_expired_sessions(t0() + minutes(12 * 60)).await.ok(), Some(1));
}

async fn sessions_end_one_by_one_or_all_but_one(store: SqlStore) {
    let account = add(&store, "marie").await;
    let tokens: Vec<_> = (0..3).map(|_| PlainToken::generate()).collect();
    for token in &tokens {
        store.create_session(&new_session(&account, token)).await.unwrap();
    }
    store.delete_session(&tokens[0].hash(), t0(), None).await.unwrap();
    assert!(store.find_session(&tokens[0].hash(), t0()).await.ok().flatten().is_none());
    assert_eq!(store.delete_account_sessions(account.id, Some(&tokens[1].hash()), t0(), None).await.ok(), Some(1));
    assert!(store.find_session(&tokens[1].hash(), t0()).await.ok().flatten().is_some());
    assert_eq!(store.delete_account_sessions(account.id, None, t0(), None).await.ok(), Some(1));
}

async fn address_failures_are_counted_within_the_window(store: SqlStore) {
    let seven = ThrottleKey::FailedLogins("10.0.0.7".into());
    let count = |key: ThrottleKey, at: Timestamp| {
        let store = store.clone();
        async move { store.count(&key, minutes(15), at).await.unwrap() }
    };
    for n in 1..=3 {
        assert_eq!(count(seven.clone(), t0()).await, (n, Some(t0())));
    }
    assert_eq!(count(ThrottleKey::FailedLogins("10.0.0.8".into()), t0()).await, (1, Some(t0())));
    assert_eq!(count(ThrottleKey::ForgotRequests("10.0.0.7".into()), t0()).await, (1, Some(t0())), "kinds apart");
    assert_eq!(count(seven.clone(), t0() + minutes(10)).await, (4, Some(t0())));
    store.uncount(&seven, t0() + minutes(10)).await.unwrap();
    assert_eq!(
        count(seven.clone(), t0() + minutes(20)).await,
        (1, Some(t0() + minutes(20))),
        "t0 slid out, t0+10 was taken back"
    );
    assert_eq!(store.purge_counts(t0() + minutes(5)).await.ok(), Some(3), "the buckets of t0");
}

async fn concurrent_counts_get_consecutive_answers(store: SqlStore) {
    let key = ThrottleKey::FailedLogins("10.0.0.9".into());
    let counts = futures_util::future::join_all((0..30).map(|_| {
        let (store, key) = (store.clone(), key.clone());
        async move { store.count(&key, minutes(15), t0()).await.map(|(n, _)| n).unwrap() }
    }))
    .await;
    let mut counts = counts;
    counts.sort_unstable();
    assert_eq!(counts, (1..=30).collect::<Vec<u64>>());
}

async fn device_attempts_are_counted_per_mark_within_a_window(store: SqlStore) {
    let account = add(&store, "marie").await;
    let attempt = |device: &'static str, at: Timestamp| {
        let store = store.clone();
        async move { store.count_device_attempt(device, account.id, minutes(60), at).await.unwrap() }
    };
    assert_eq!(attempt("mark-a", t0()).await, 1);
    assert_eq!(attempt("mark-a", t0() + minutes(30)).await, 2);
    assert_eq!(attempt("mark-b", t0()).await, 1, "marks apart");
    assert_eq!(attempt("mark-a", t0() + minutes(61)).await, 1, "a new window");
    store.clear_device_attempts("mark-a").await.unwrap();
    assert_eq!(attempt("mark-a", t0() + minutes(62)).await, 1);
    let counts = futures_util::future::join_all((0..20).map(|_| attempt("mark-c", t0()))).await;
    assert_eq!(counts.iter().max(), Some(&20), "concurrent attempts are all counted");
    assert_eq!(store.purge_device_attempts(t0() + minutes(1)).await.ok(), Some(2), "mark-b and mark-c");
}

async fn a_login_despite_a_lock_leaves_the_lock(store: SqlStore) {
    let account = add(&store, "marie").await;
    for n in 0..5 {
        fail(&store, &account, t0() + minutes(n)).await;
    }
    let at = t0() + minutes(10);
    assert_eq!(succeed(&store, &account, true, at).await, Some(true));
    let after = reload(&store, &account).await;
    assert!(after.is_locked_at(at), "the stranger stays locked out");
    assert_eq!(after.last_login_at, Some(at));
    store
        .record_event(NewAuditEvent {
            at,
            account_id: Some(account.id),
            kind: AuditKind::LoginFailedOnDevice,
            actor: Actor::Member,
            context: context(),
            detail: None,
        })
        .await
        .unwrap();
    let after_lock = t0() + minutes(70);
    assert_eq!(
        fail(&store, &account, after_lock).await,
        FailureOutcome::Counted { failures: 1 },
        "device failures do not count"
    );
}

async fn events_are_listed_newest_first(store: SqlStore) {
    let account = add(&store, "marie").await;
    fail(&store, &account, t0()).await;
    assert_eq!(succeed(&store, &account, false, t0() + minutes(1)).await, Some(true));
    let events = store.account_events(account.id, 10).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [AuditKind::LoginSucceeded, AuditKind::LoginFailed, AuditKind::AccountCreated]);
    assert_eq!(events[0].context, context());
    assert_eq!(events[2].actor, Actor::Operator);
}

#[test]
fn the_postgres_suite_is_not_silently_skipped_under_ci() {
    if std::env::var_os("CI").is_some() {
        assert!(std::env::var_os(guichet_store::testing::POSTGRES_URL_VARIABLE).is_some());
    }
    let _: fn() -> TestDatabase = TestDatabase::sqlite;
}

#[expect(dead_code, reason = "keeps the trait objects' shape checked: the app hands out every port from one store")]
fn the_store_is_every_port(store: SqlStore) -> Ports {
    Ports::of(Arc::new(store))
}

async fn locking_queues_the_notice_with_the_lock(store: SqlStore) {
    let account = add(&store, "marie").await;
    for _ in 0..3 {
        fail(&store, &account, t0()).await;
    }
    let claimed = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].kind, claimed[0].account_id), (MailKind::AccountLocked, Some(account.id)));
    assert_eq!(claimed[0].recipient, account.email);
}

fn request(n: usize) -> NewMail {
    NewMail {
        kind: MailKind::PasswordReset,
        account_id: None,
        recipient: EmailAddress::parse(&format!("m{n}@chu.example.fr")).unwrap(),
        subject: MailSubject::None,
    }
}

async fn claimed_mail_is_never_claimed_twice_while_leased(store: SqlStore) {
    for n in 0..30 {
        store.enqueue_mail(&request(n), t0()).await.unwrap();
    }
    let store = Arc::new(store);
    let claimers = (0..6).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due_mail(t0(), t0() + minutes(2), 4).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|m| m.id.get()));
            }
        })
    });
    let mut all: Vec<i64> =
        futures_util::future::join_all(claimers).await.into_iter().flat_map(|r| r.unwrap_or_default()).collect();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (30, 30), "every message claimed exactly once");
    assert!(store.claim_due_mail(t0() + minutes(1), t0() + minutes(3), 50).await.unwrap_or_default().is_empty());
    let after_lease = store.claim_due_mail(t0() + minutes(2), t0() + minutes(4), 50).await.unwrap_or_default();
    assert_eq!(after_lease.len(), 30, "an expired lease frees the message (its sender died)");
    assert!(after_lease.iter().all(|m| m.attempts == 2));
}

async fn retried_mail_waits_for_its_next_attempt(store: SqlStore) {
    let id = store.enqueue_mail(&request(1), t0()).await.unwrap();
    store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap();
    let retry = MailOutcome::Retry { error: "connection refused".into(), next_attempt_at: t0() + minutes(5) };
    store.finish_mail(id, None, &retry.record(t0())).await.unwrap();
    assert!(store.claim_due_mail(t0() + minutes(4), t0() + minutes(6), 10).await.unwrap_or_default().is_empty());
    let again = store.claim_due_mail(t0() + minutes(5), t0() + minutes(7), 10).await.unwrap_or_default();
    assert_eq!(again.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(), [(id, 2)]);
}

async fn finished_mail_is_logged_per_account(store: SqlStore) {
    let account = add(&store, "marie").await;
    let id = store.enqueue_mail(&request(1), t0()).await.unwrap();
    store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap();
    let sent = MailOutcome::Sent { answer: "250 2.0.0 Ok: queued".into() };
    store.finish_mail(id, Some(account.id), &sent.record(t0() + minutes(1))).await.unwrap();
    let log = store.account_mail(account.id, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].state, log[0].attempts, log[0].last_answer.as_deref()),
        (MailState::Sent, 1, Some("250 2.0.0 Ok: queued"))
    );
    assert_eq!(store.count_sent_mail(account.id, MailKind::PasswordReset, t0()).await.ok(), Some(1));
    assert_eq!(store.count_sent_mail(account.id, MailKind::PasswordReset, t0() + minutes(2)).await.ok(), Some(0));
    assert!(store.claim_due_mail(t0() + minutes(9), t0() + minutes(10), 10).await.unwrap_or_default().is_empty());
}

async fn new_code(store: &SqlStore, account: &Account, expires_at: Timestamp) -> RecoveryCode {
    let code = RecoveryCode::generate();
    let stored = StoredCode {
        account_id: account.id,
        purpose: CodePurpose::Reset,
        created_at: t0(),
        expires_at,
        used_at: None,
        voided_at: None,
    };
    assert_eq!(store.insert_code(&code.hash(), &stored, &account.email).await.ok(), Some(true));
    code
}

fn some_hash() -> PasswordHash {
    PasswordHash::from_phc("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into())
}

async fn a_code_is_redeemed_once_however_many_try_at_once(store: SqlStore) {
    let account = add(&store, "marie").await;
    let code = new_code(&store, &account, t0() + minutes(60)).await;
    let store = Arc::new(store);
    let tabs = (0..20).map(|_| {
        let store = Arc::clone(&store);
        let hash = code.hash();
        tokio::spawn(async move { rules(&store).redeem_code(&hash, &some_hash(), &context(), t0()).await })
    });
    let results: Vec<_> = futures_util::future::join_all(tabs).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| *r == Err(CodeError::Used)));
}

async fn codes_say_why_they_cannot_be_used(store: SqlStore) {
    let account = add(&store, "marie").await;
    let expired = new_code(&store, &account, t0() + minutes(60)).await;
    let hash = some_hash();
    let redeem = |code: RecoveryCode, at| {
        let (store, hash) = (store.clone(), hash.clone());
        async move { rules(&store).redeem_code(&code.hash(), &hash, &context(), at).await.unwrap() }
    };
    assert_eq!(redeem(expired.clone(), t0() + minutes(60)).await, Err(CodeError::Expired));
    assert_eq!(redeem(RecoveryCode::generate(), t0()).await, Err(CodeError::Invalid));
    let first = new_code(&store, &account, t0() + minutes(60)).await;
    let second = new_code(&store, &account, t0() + minutes(60)).await;
    assert_eq!(store.pending_codes(account.id, t0()).await.ok(), Some(3));
    assert_eq!(redeem(second.clone(), t0()).await, Ok(account.id));
    assert_eq!(redeem(second, t0()).await, Err(CodeError::Used));
    assert_eq!(redeem(first, t0()).await, Err(CodeError::Voided), "using one code voids the others");
    assert_eq!(store.pending_codes(account.id, t0()).await.ok(), Some(0));
}

async fn redeeming_resets_the_account_and_queues_the_notice(store: SqlStore) {
    let account = add(&store, "marie").await;
    for _ in 0..3 {
        fail(&store, &account, t0()).await;
    }
    let token = PlainToken::generate();
    store.create_session(&new_session(&account, &token)).await.unwrap();
    for notice in store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default() {
        let sent = MailOutcome::Sent { answer: "250 ok".into() };
        store.finish_mail(notice.id, Some(account.id), &sent.record(t0())).await.unwrap();
    }
    let code = new_code(&store, &account, t0() + minutes(60)).await;
    let redeemed = rules(&store).redeem_code(&code.hash(), &some_hash(), &context(), t0() + minutes(1)).await;
    assert_eq!(redeemed.ok(), Some(Ok(account.id)));
    let after = reload(&store, &account).await;
    assert_eq!(after.locked_until, None);
    assert_eq!(after.password_hash, Some(some_hash()));
    assert!(store.find_session(&token.hash(), t0() + minutes(1)).await.ok().flatten().is_none(), "sessions ended");
    assert_eq!(fail(&store, &account, t0() + minutes(2)).await, FailureOutcome::Counted { failures: 1 });
    let queued = store.claim_due_mail(t0() + minutes(3), t0() + minutes(5), 10).await.unwrap_or_default();
    assert_eq!(queued.iter().map(|m| m.kind).collect::<Vec<_>>(), [MailKind::PasswordChanged]);
    let events = store.account_events(account.id, 5).await.unwrap_or_default();
    assert!(events.iter().any(|e| e.kind == AuditKind::PasswordChanged));
}

async fn the_server_key_is_made_once_and_shared(store: SqlStore) {
    let first = ServerKey::generate();
    let kept = store.server_key("main", &first, t0()).await.unwrap();
    assert_eq!(kept.expose(), first.expose());
    let later = store.server_key("main", &ServerKey::generate(), t0()).await.unwrap();
    assert_eq!(later.expose(), first.expose(), "a second instance gets the first key");
    let other = store.server_key("other", &ServerKey::generate(), t0()).await.unwrap();
    assert_ne!(other.expose(), first.expose());
}

fn operator_event(account: Option<&Account>, kind: AuditKind) -> NewAuditEvent {
    NewAuditEvent {
        at: t0(),
        account_id: account.map(|a| a.id),
        kind,
        actor: Actor::Operator,
        context: RequestContext::default(),
        detail: None,
    }
}

fn staff_event(account: &Account, kind: AuditKind) -> NewAuditEvent {
    operator_event(Some(account), kind)
}

async fn writes_within_reach_of_members_only_refuse_staff_accounts(store: SqlStore) {
    let member = add(&store, "marie").await;
    let staff = add(&store, "desk").await;
    let promoted =
        changes(&store).set_role(staff.id, Role::Assistance, staff_event(&staff, AuditKind::RoleChanged)).await;
    assert_eq!(promoted.ok(), Some(Guarded::Done));
    let event = |a: &Account| staff_event(a, AuditKind::AccountDisabled);
    let refused = changes(&store).set_disabled(staff.id, true, event(&staff), Reach::MembersOnly).await;
    assert!(matches!(refused, Err(StoreError::Changed)), "{refused:?}");
    let refused = rules(&store).unlock_account(staff.id, event(&staff), Reach::MembersOnly).await;
    assert!(matches!(refused, Err(StoreError::Changed)), "{refused:?}");
    let email = EmailAddress::parse("pris@example.org").unwrap();
    let name = DisplayName::default();
    let names = (&name, &NameParts::default());
    let refused =
        changes(&store).change_details(staff.id, &email, names, None, event(&staff), Reach::MembersOnly).await;
    assert!(matches!(refused, Err(StoreError::Changed)), "{refused:?}");
    let mail = NewMail {
        kind: MailKind::PasswordReset,
        account_id: Some(staff.id),
        recipient: staff.email.clone(),
        subject: MailSubject::None,
    };
    let refused = changes(&store).queue_staff_mail(&mail, event(&staff), Reach::MembersOnly).await;
    assert!(matches!(refused, Err(StoreError::Changed)), "{refused:?}");
    assert_eq!(reload(&store, &staff).await.disabled_at, None);
    assert_eq!(
        changes(&store).set_disabled(member.id, true, event(&member), Reach::MembersOnly).await.ok(),
        Some(Guarded::Done)
    );
    assert_eq!(
        changes(&store).set_disabled(staff.id, true, event(&staff), Reach::Anyone).await.ok(),
        Some(Guarded::Done)
    );
}

async fn codes_and_temporary_passwords_bind_to_the_address_they_were_sent_to(store: SqlStore) {
    let account = add(&store, "marie").await;
    let elsewhere = EmailAddress::parse("ancienne@example.org").unwrap();
    let stored = StoredCode {
        account_id: account.id,
        purpose: CodePurpose::Reset,
        created_at: t0(),
        expires_at: t0() + minutes(60),
        used_at: None,
        voided_at: None,
    };
    let code = RecoveryCode::generate();
    assert_eq!(store.insert_code(&code.hash(), &stored, &elsewhere).await.ok(), Some(false));
    assert!(store.find_code(&code.hash()).await.ok().flatten().is_none());
    let later = t0() + minutes(60);
    let temporary = TemporaryPassword::generate().hash();
    let set = rules(&store)
        .set_temporary_password(account.id, &temporary, later, Provided::StillAddress(&elsewhere), None, Reach::Anyone)
        .await;
    assert_eq!(set.ok(), Some(false));
    assert_eq!(reload(&store, &account).await.temporary_password_hash, None);
    let set = rules(&store)
        .set_temporary_password(
            account.id,
            &temporary,
            later,
            Provided::StillAddress(&account.email),
            None,
            Reach::Anyone,
        )
        .await;
    assert_eq!(set.ok(), Some(true));
    let after = reload(&store, &account).await;
    assert_eq!((after.temporary_password_hash, after.temporary_password_until), (Some(temporary), Some(later)));
    assert_eq!(after.password_hash, account.password_hash, "the password stays beside it");
}

async fn a_member_promoted_to_staff_starts_afresh(store: SqlStore) {
    let account = add(&store, "marie").await;
    let code = new_code(&store, &account, t0() + minutes(60)).await;
    let token = PlainToken::generate();
    store.create_session(&new_session(&account, &token)).await.unwrap();
    let promoted =
        changes(&store).set_role(account.id, Role::Assistance, staff_event(&account, AuditKind::RoleChanged)).await;
    assert_eq!(promoted.ok(), Some(Guarded::Done));
    assert!(store.find_session(&token.hash(), t0()).await.ok().flatten().is_none(), "sessions ended");
    let used = store.find_code(&code.hash()).await.ok().flatten().and_then(|c| c.used_at);
    assert!(used.is_some(), "codes used up");
    assert_eq!(reload(&store, &account).await.devices_trusted_after, t0(), "device marks voided");
}

async fn an_address_change_voids_what_was_sent_to_the_old_one(store: SqlStore) {
    let account = add(&store, "marie").await;
    let code = new_code(&store, &account, t0() + minutes(60)).await;
    let new = EmailAddress::parse("marie@gmail.example.com").unwrap();
    let event = staff_event(&account, AuditKind::DetailsChanged);
    let changed = changes(&store)
        .change_details(account.id, &new, (&account.display_name, &account.names), None, event, Reach::MembersOnly)
        .await;
    assert!(changed.is_ok(), "{changed:?}");
    assert!(store.find_code(&code.hash()).await.ok().flatten().and_then(|c| c.used_at).is_some());
    let queued = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default();
    let notice = queued.iter().find(|m| m.kind == MailKind::EmailChanged).unwrap_or_else(|| panic!("{queued:?}"));
    assert_eq!(notice.recipient, account.email, "to the old address");
    let after = reload(&store, &account).await;
    assert_eq!((after.email, after.devices_trusted_after), (new, t0()));
}

async fn the_database_answers(store: SqlStore) {
    assert!(Health::ping(&store).await.is_ok());
}

async fn found(store: &SqlStore, query: AccountQuery, page: Page) -> (Vec<String>, u64) {
    let (accounts, total) =
        store.browse_accounts(&query, t0(), page).await.unwrap_or_else(|e| panic!("{query:?}: {e}"));
    (accounts.iter().map(|a| a.identifier.to_string()).collect(), total)
}

const ALL: Page = Page { offset: 0, limit: 50 };

async fn accounts_are_searched_by_identifier_email_or_name(store: SqlStore) {
    add(&store, "marie.durand").await;
    add(&store, "paul").await;
    let text = |q: &str| AccountQuery { text: q.to_owned(), ..AccountQuery::default() };
    let both = (vec!["marie.durand".to_owned(), "paul".to_owned()], 2);
    assert_eq!(found(&store, text("DURAND"), ALL).await, both, "the name matches both, case aside");
    assert_eq!(found(&store, text("paul@"), ALL).await, (vec!["paul".to_owned()], 1));
    assert_eq!(found(&store, text("%"), ALL).await, (vec![], 0), "wildcards are matched literally");
    assert_eq!(found(&store, AccountQuery::default(), ALL).await, both, "no filter lists everyone");
}

async fn accounts_are_listed_by_role_state_group_and_refused_mail_a_page_at_a_time(store: SqlStore) {
    let names = ["anne", "bruno", "chloe", "denis", "emma"];
    let mut accounts = Vec::new();
    for name in names {
        accounts.push(add(&store, name).await);
    }
    let [anne, bruno, chloe, denis, emma] = accounts.try_into().unwrap_or_else(|_| unreachable!());
    let only = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    // Roles.
    changes(&store).set_role(bruno.id, Role::Assistance, staff_event(&bruno, AuditKind::RoleChanged)).await.unwrap();
    let role = AccountQuery { role: Some(Role::Assistance), ..AccountQuery::default() };
    assert_eq!(found(&store, role, ALL).await, (only(&["bruno"]), 1));
    // States: chloe locked, denis disabled, emma signed in once.
    let locked = t0() + minutes(30);
    let mut work = store.begin().await.unwrap();
    work.set_lock(chloe.id, Some(locked), 0).await.unwrap();
    work.set_logged_in(emma.id, t0(), None).await.unwrap();
    work.commit().await.unwrap();
    let event = staff_event(&denis, AuditKind::AccountDisabled);
    changes(&store).set_disabled(denis.id, true, event, Reach::Anyone).await.unwrap();
    let state = |state| AccountQuery { state: Some(state), ..AccountQuery::default() };
    assert_eq!(found(&store, state(AccountState::Locked), ALL).await.0, only(&["chloe"]));
    assert_eq!(found(&store, state(AccountState::Disabled), ALL).await.0, only(&["denis"]));
    assert_eq!(found(&store, state(AccountState::Active), ALL).await.0, only(&["emma"]));
    assert_eq!(found(&store, state(AccountState::NeverSignedIn), ALL).await.0, only(&["anne", "bruno"]));
    // Groups.
    let bureau = store.create_group(&GroupName::parse("bureau").unwrap(), "", t0()).await.unwrap();
    groups(&store).set_membership(bureau.id, anne.id, true, staff_event(&anne, AuditKind::GroupJoined)).await.unwrap();
    let group = AccountQuery { group: GroupName::parse("bureau").ok(), ..AccountQuery::default() };
    assert_eq!(found(&store, group, ALL).await.0, only(&["anne"]));
    // Refused mail: emma's last message was given up; anne's was, then one got through.
    let mail_to = |account: &Account, outcome: MailOutcome, at: Timestamp| {
        let store = store.clone();
        let mail = NewMail {
            kind: MailKind::PasswordReset,
            account_id: Some(account.id),
            recipient: account.email.clone(),
            subject: MailSubject::None,
        };
        let account = account.id;
        async move {
            let id = store.enqueue_mail(&mail, at).await.unwrap();
            store.finish_mail(id, Some(account), &outcome.record(at)).await.unwrap();
        }
    };
    let refused = || MailOutcome::Failed { error: "550 5.7.1 refusé".into() };
    let sent = || MailOutcome::Sent { answer: "250 ok".into() };
    mail_to(&emma, refused(), t0()).await;
    mail_to(&anne, refused(), t0()).await;
    mail_to(&anne, sent(), t0() + minutes(1)).await;
    mail_to(&chloe, refused(), t0() - SignedDuration::from_hours(24 * 40)).await;
    let bounced =
        AccountQuery { refused_since: Some(t0() - SignedDuration::from_hours(24)), ..AccountQuery::default() };
    assert_eq!(
        found(&store, bounced, ALL).await.0,
        only(&["emma"]),
        "only a recent refusal not followed by a delivery"
    );
    // Pages, with the total.
    assert_eq!(
        found(&store, AccountQuery::default(), Page { offset: 2, limit: 2 }).await,
        (only(&["chloe", "denis"]), 5)
    );
    assert_eq!(found(&store, AccountQuery::default(), Page { offset: 4, limit: 2 }).await, (only(&["emma"]), 5));
}

async fn ending_other_sessions_is_recorded_with_how_many(store: SqlStore) {
    let account = add(&store, "marie").await;
    let tokens: Vec<PlainToken> = (0..3).map(|_| PlainToken::generate()).collect();
    for token in &tokens {
        store.create_session(&new_session(&account, token)).await.unwrap();
    }
    let event = staff_event(&account, AuditKind::OtherSessionsEnded);
    let ended = store.delete_account_sessions(account.id, Some(&tokens[0].hash()), t0(), Some(event)).await;
    assert_eq!(ended.ok(), Some(2));
    let events = store.account_events(account.id, 5).await.unwrap_or_default();
    assert_eq!(events[0].kind, AuditKind::OtherSessionsEnded);
    assert_eq!(events[0].detail, Some(guichet_core::audit::AuditDetail::Sessions(2)));
}

async fn staff_mail_is_queued_with_its_audit_line(store: SqlStore) {
    let account = add(&store, "marie").await;
    let mail = NewMail {
        kind: MailKind::PasswordReset,
        account_id: Some(account.id),
        recipient: account.email.clone(),
        subject: MailSubject::None,
    };
    let queued = changes(&store)
        .queue_staff_mail(&mail, staff_event(&account, AuditKind::ResetCodeSent), Reach::MembersOnly)
        .await;
    assert!(queued.is_ok(), "{queued:?}");
    let claimed = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default();
    assert_eq!(
        claimed.iter().map(|m| (m.kind, m.subject)).collect::<Vec<_>>(),
        [(MailKind::PasswordReset, MailSubject::None)]
    );
    let events = store.account_events(account.id, 5).await.unwrap_or_default();
    assert_eq!(events[0].kind, AuditKind::ResetCodeSent);
}

async fn failures_and_locks_are_counted_per_day(store: SqlStore) {
    let account = add(&store, "marie").await;
    for n in 0..3 {
        fail(&store, &account, t0() + minutes(n)).await;
    }
    fail(&store, &account, t0() + minutes(60 * 24)).await;
    let counts = store
        .daily_counts(&[AuditKind::LoginFailed, AuditKind::AccountLocked], t0() - minutes(60))
        .await
        .unwrap_or_default();
    let day = t0().as_millisecond().div_euclid(86_400_000);
    let on = |d: i64, kind: AuditKind| {
        counts.iter().filter(|(x, k, _)| *x == d && *k == kind).map(|(_, _, n)| *n).sum::<u64>()
    };
    assert_eq!((on(day, AuditKind::LoginFailed), on(day, AuditKind::AccountLocked)), (3, 1));
    assert_eq!(on(day + 1, AuditKind::LoginFailed), 1);
}

fn written_request(account: Option<&Account>) -> NewRequest {
    NewRequest {
        wants: Some(guichet_core::desk::Wants::Call),
        name: "Marie Durand".into(),
        email: EmailAddress::parse("marie@chu.example.fr").unwrap(),
        identifier: "marie".into(),
        phone: "04 72 00 00 00".into(),
        message: "Je ne reçois pas le code.".into(),
        address: Some("192.0.2.1".into()),
        account_id: account.map(|a| a.id),
        origin: guichet_core::desk::RequestOrigin::Member,
        from_account_address: false,
    }
}

async fn a_request_is_stored_with_its_receipt(store: SqlStore) {
    let created = desk_rules(&store).create_request(&written_request(None), None, t0()).await.unwrap();
    assert!(created.reference.starts_with("A-"));
    assert_eq!(created.state, RequestState::New);
    let found = store.find_request(created.id).await.ok().flatten().map(|r| r.reference);
    assert_eq!(found.as_deref(), Some(created.reference.as_str()));
    assert_eq!(store.list_requests(true, 10).await.unwrap_or_default().len(), 1);
    let receipt = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default();
    assert_eq!(
        receipt.iter().map(|m| (m.kind, m.subject)).collect::<Vec<_>>(),
        [(MailKind::AssistanceReceived, MailSubject::Request(created.id))]
    );
}

async fn a_request_change_comes_with_its_note(store: SqlStore) {
    let staff = add(&store, "desk").await;
    let created = desk_rules(&store).create_request(&written_request(None), None, t0()).await.unwrap();
    let note = NewNote { author_id: Some(staff.id), body: "Demande attribuée".into() };
    let changed =
        desk_rules(&store).update_request(created.id, RequestChange::Assignee(Some(staff.id)), &note, t0()).await;
    assert!(changed.is_ok(), "{changed:?}");
    let closed = NewNote { author_id: Some(staff.id), body: "État : close".into() };
    let changed =
        desk_rules(&store).update_request(created.id, RequestChange::State(RequestState::Closed), &closed, t0()).await;
    assert!(changed.is_ok(), "{changed:?}");
    let request = store.find_request(created.id).await.ok().flatten().unwrap_or_else(|| panic!("gone"));
    assert_eq!((request.assignee_id, request.state), (Some(staff.id), RequestState::Closed));
    assert!(store.list_requests(true, 10).await.unwrap_or_default().is_empty(), "closed ones are not open");
    let notes: Vec<String> =
        store.request_notes(created.id).await.unwrap_or_default().into_iter().map(|n| n.body).collect();
    assert_eq!(notes, ["Demande attribuée", "État : close"]);
    let unassigned = NewNote { author_id: None, body: "x".into() };
    let changed = desk_rules(&store).update_request(created.id, RequestChange::Assignee(None), &unassigned, t0()).await;
    assert!(changed.is_ok());
    assert_eq!(store.find_request(created.id).await.ok().flatten().and_then(|r| r.assignee_id), None);
}

async fn propose(store: &SqlStore, request: RequestId, staff: &Account, starts: &[i64]) {
    let slots: Vec<(Timestamp, Timestamp)> =
        starts.iter().map(|m| (t0() + minutes(*m), t0() + minutes(*m + 30))).collect();
    let note = NewNote { author_id: Some(staff.id), body: format!("{} créneau(x)", slots.len()) };
    let (rules, key) = (desk_rules(store), slot_key());
    let phone = "04 91 00 00 00";
    rules.propose_slots(request, &slots, phone, &note, true, &key, Reach::Anyone, t0()).await.unwrap();
}

async fn a_new_proposal_withdraws_the_slots_not_taken_up(store: SqlStore) {
    let staff = add(&store, "desk").await;
    let member = add(&store, "marie").await;
    let created = desk_rules(&store).create_request(&written_request(Some(&member)), None, t0()).await.unwrap();
    propose(&store, created.id, &staff, &[60, 120]).await;
    propose(&store, created.id, &staff, &[180]).await;
    let states: Vec<SlotState> =
        store.request_slots(created.id).await.unwrap_or_default().iter().map(|s| s.state_at(t0())).collect();
    assert_eq!(states, [SlotState::Withdrawn, SlotState::Withdrawn, SlotState::Open]);
    let request = store.find_request(created.id).await.ok().flatten().map(|r| r.state);
    assert_eq!(request, Some(RequestState::Waiting));
    assert_eq!(store.request_notes(created.id).await.unwrap_or_default().len(), 2, "each proposal with its note");
    let events = store.account_events(member.id, 5).await.unwrap_or_default();
    assert_eq!(events.iter().filter(|e| e.kind == AuditKind::CallProposed).count(), 2);
    let mail = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default();
    let proposals = mail.iter().filter(|m| m.subject == MailSubject::Request(created.id)).count();
    assert_eq!(proposals, 3, "the receipt and two proposals");
}

async fn a_slot_is_confirmed_once_and_withdraws_the_others(store: SqlStore) {
    let staff = add(&store, "desk").await;
    let created = desk_rules(&store).create_request(&written_request(None), None, t0()).await.unwrap();
    propose(&store, created.id, &staff, &[60, 120]).await;
    let slots = store.request_slots(created.id).await.unwrap_or_default();
    let tokens: Vec<PlainToken> = slots.iter().map(|_| PlainToken::generate()).collect();
    for (slot, token) in slots.iter().zip(&tokens) {
        store.set_slot_token(slot.id, &token.hash()).await.unwrap();
    }
    let found = store.find_slot(&tokens[1].hash()).await.ok().flatten().map(|(s, r)| (s.id, r.id));
    assert_eq!(found, Some((slots[1].id, created.id)));
    let at = t0() + minutes(5);
    let hashes = [tokens[0].hash(), tokens[1].hash(), tokens[0].hash()];
    let rules = desk_rules(&store);
    let both =
        futures_util::future::join_all(hashes.iter().map(|h| rules.confirm_slot(h, None, "confirmé", true, at))).await;
    let confirmed = both.iter().filter(|c| matches!(c, Ok(Some(Confirmation::Confirmed(_))))).count();
    assert_eq!(confirmed, 1, "{both:?}");
    let slots = store.request_slots(created.id).await.unwrap_or_default();
    let states: Vec<SlotState> = slots.iter().map(|s| s.state_at(at)).collect();
    assert_eq!(states.iter().filter(|s| **s == SlotState::Confirmed).count(), 1);
    assert_eq!(states.iter().filter(|s| **s == SlotState::Withdrawn).count(), 1);
    let chosen = slots.iter().find(|s| s.confirmed_at.is_some()).map(|s| s.id);
    assert_eq!(
        store.find_slot_by_id(chosen.unwrap_or(slots[0].id)).await.ok().flatten().map(|s| s.state_at(at)),
        Some(SlotState::Confirmed)
    );
    let calls = store.upcoming_calls(at, 5).await.unwrap_or_default();
    assert_eq!(calls.iter().map(|(s, r)| (Some(s.id), r.id)).collect::<Vec<_>>(), [(chosen, created.id)]);
    assert!(store.upcoming_calls(t0() + minutes(200), 5).await.unwrap_or_default().is_empty(), "past calls are gone");
    assert!(
        desk_rules(&store)
            .confirm_slot(&PlainToken::generate().hash(), None, "confirmé", true, at)
            .await
            .ok()
            .flatten()
            .is_none(),
        "unknown link"
    );
}

async fn a_refused_login_is_audited_without_counting(store: SqlStore) {
    let account = add(&store, "marie").await;
    store
        .record_event(NewAuditEvent {
            at: t0(),
            account_id: Some(account.id),
            kind: AuditKind::LoginRefusedLocked,
            actor: Actor::Member,
            context: context(),
            detail: None,
        })
        .await
        .unwrap();
    let events = store.account_events(account.id, 5).await.unwrap_or_default();
    assert_eq!(events[0].kind, AuditKind::LoginRefusedLocked);
    for n in 0..2 {
        fail(&store, &account, t0() + minutes(n)).await;
    }
    assert_eq!(fail(&store, &account, t0() + minutes(3)).await, FailureOutcome::Locked { until: t0() + minutes(63) });
}

async fn a_members_own_change_keeps_this_session_and_queues_the_notice(store: SqlStore) {
    let account = add(&store, "marie").await;
    let (here, elsewhere) = (PlainToken::generate(), PlainToken::generate());
    for token in [&here, &elsewhere] {
        store.create_session(&new_session(&account, token)).await.unwrap();
    }
    let newer = PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2huZXc".into());
    let changed = rules(&store).change_password(account.id, &newer, &here.hash(), false, &context(), t0()).await;
    assert!(changed.is_ok(), "{changed:?}");
    assert!(store.find_session(&here.hash(), t0()).await.ok().flatten().is_some());
    assert!(store.find_session(&elsewhere.hash(), t0()).await.ok().flatten().is_none());
    let after = reload(&store, &account).await;
    assert_eq!((after.password_hash, after.devices_trusted_after), (Some(newer), t0()));
    let mail = store.claim_due_mail(t0(), t0() + minutes(2), 10).await.unwrap_or_default();
    assert_eq!(mail.iter().map(|m| m.kind).collect::<Vec<_>>(), [MailKind::PasswordChanged]);
}

async fn events_are_recorded_one_by_one(store: SqlStore) {
    let account = add(&store, "marie").await;
    store.record_event(staff_event(&account, AuditKind::LoggedOut)).await.unwrap();
    let events = store.account_events(account.id, 1).await.unwrap_or_default();
    assert_eq!(events.iter().map(|e| (e.kind, e.actor)).collect::<Vec<_>>(), [(AuditKind::LoggedOut, Actor::Operator)]);
}

async fn finished_mail_is_forgotten_after_a_while(store: SqlStore) {
    let account = add(&store, "marie").await;
    let id = store.enqueue_mail(&request(1), t0()).await.unwrap();
    store.enqueue_mail(&request(2), t0()).await.unwrap();
    store.claim_due_mail(t0(), t0() + minutes(2), 1).await.unwrap();
    let sent = MailOutcome::Sent { answer: "250 ok".into() };
    store.finish_mail(id, Some(account.id), &sent.record(t0())).await.unwrap();
    assert_eq!(store.purge_finished_mail(t0() + minutes(1)).await.ok(), Some(1), "the pending one stays");
    assert!(store.account_mail(account.id, 5).await.unwrap_or_default().is_empty());
}

async fn codes_are_revoked_or_forgotten(store: SqlStore) {
    let account = add(&store, "marie").await;
    let first = new_code(&store, &account, t0() + minutes(60)).await;
    let second = new_code(&store, &account, t0() + minutes(60)).await;
    assert_eq!(store.pending_codes(account.id, t0()).await.ok(), Some(2));
    store.delete_code(&first.hash()).await.unwrap();
    assert!(store.find_code(&first.hash()).await.ok().flatten().is_none());
    store.revoke_codes(account.id, t0()).await.unwrap();
    assert_eq!(store.pending_codes(account.id, t0()).await.ok(), Some(0));
    assert!(store.find_code(&second.hash()).await.ok().flatten().and_then(|c| c.used_at).is_some());
}

async fn notes_are_listed_oldest_first(store: SqlStore) {
    let staff = add(&store, "desk").await;
    let created = desk_rules(&store).create_request(&written_request(None), None, t0()).await.unwrap();
    for (n, body) in ["premier", "second"].into_iter().enumerate() {
        let note = NewNote { author_id: Some(staff.id), body: body.into() };
        let at = t0() + minutes(i64::try_from(n).unwrap_or(0));
        store.add_note(created.id, &note, at).await.unwrap();
    }
    let notes = store.request_notes(created.id).await.unwrap_or_default();
    assert_eq!(
        notes.iter().map(|n| (n.body.as_str(), n.author_id)).collect::<Vec<_>>(),
        [("premier", Some(staff.id)), ("second", Some(staff.id))]
    );
}

fn client(id: &str) -> Client {
    Client {
        id: ClientId::from_stored(id.to_owned()),
        name: format!("Appli {id}"),
        secret_hash: Some(PlainToken::generate().hash()),
        redirect_uris: vec!["https://a.example/cb".to_owned(), "https://a.example/cb2".to_owned()],
        post_logout_redirect_uris: vec!["https://a.example/bye".to_owned()],
        groups: vec![GroupName::parse("bureau").unwrap()],
        backchannel_logout_uri: Some(format!("https://{id}.example/backchannel")),
        frontchannel_logout_uri: None,
        offline: false,
        second_factor: false,
        created_at: t0(),
    }
}

fn refresh_for(
    n: u8,
    client: &Client,
    account: &Account,
    family: &TokenHash,
    session: Option<TokenHash>,
) -> NewRefreshToken {
    NewRefreshToken {
        hash: TokenHash::from_stored(format!("{n:064}")),
        family: family.clone(),
        client: client.id.clone(),
        account: account.id,
        session,
        scope: "openid".to_owned(),
        sid: "0123456789abcdef0123456789abcdef".to_owned(),
        auth_time: t0(),
        factors: guichet_core::second_factor::Factors::PASSWORD,
        created_at: t0(),
        expires_at: t0() + SignedDuration::from_hours(1),
    }
}

fn code_for(client: &Client, account: &Account, hash: &TokenHash) -> NewCode {
    NewCode {
        hash: hash.clone(),
        client: client.id.clone(),
        account: account.id,
        redirect_uri: "https://a.example/cb".to_owned(),
        scope: "openid groups".to_owned(),
        nonce: Some("n-1".to_owned()),
        code_challenge: None,
        auth_time: t0(),
        created_at: t0(),
        expires_at: t0() + SignedDuration::from_secs(60),
        session: None,
        factors: guichet_core::second_factor::Factors::PASSWORD,
    }
}

fn grant_for(jti: &str, client: &Client, account: &Account, code: &TokenHash) -> NewGrant {
    NewGrant {
        jti: jti.to_owned(),
        code: code.clone(),
        client: client.id.clone(),
        account: account.id,
        scope: "openid".to_owned(),
        expires_at: t0() + SignedDuration::from_mins(10),
        session: None,
    }
}

async fn oidc_clients_are_kept_listed_and_removed_with_what_they_hold(store: SqlStore) {
    let marie = add(&store, "marie").await;
    let public = Client { secret_hash: None, groups: Vec::new(), ..client("b-public") };
    store.create_client(&client("a-conf")).await.unwrap();
    store.create_client(&public).await.unwrap();
    let taken = store.create_client(&client("a-conf")).await;
    assert!(matches!(taken, Err(StoreError::Conflict(Conflict::Client))), "{taken:?}");
    let listed = store.list_clients().await.unwrap_or_default();
    assert_eq!(listed, vec![client_as_stored(&store, "a-conf").await, public.clone()]);
    let code = PlainToken::generate().hash();
    let a = client_as_stored(&store, "a-conf").await;
    store.store_code(&code_for(&a, &marie, &code)).await.unwrap();
    let refresh = refresh_for(1, &a, &marie, &code, None);
    assert_eq!(grants(&store).store_grant(&grant_for("j-1", &a, &marie, &code), &refresh, None).await.ok(), Some(true));
    assert_eq!(store.remove_client(&a.id).await.ok(), Some(true));
    assert_eq!(store.remove_client(&a.id).await.ok(), Some(false), "gone already");
    assert!(store.find_grant("j-1").await.ok().flatten().is_none(), "its tokens went with it");
    assert_eq!(grants(&store).use_code(&code, &a.id, t0()).await.ok(), Some(CodeUse::Unknown), "and its codes");
    assert!(store.find_client(&ClientId::from_stored("nope".to_owned())).await.ok().flatten().is_none());
}

async fn a_session_that_ends_tells_its_applications_and_takes_its_refresh_tokens(store: SqlStore) {
    let marie = add(&store, "marie").await;
    let (told, silent) = (client("a-told"), Client { backchannel_logout_uri: None, ..client("b-silent") });
    store.create_client(&told).await.unwrap();
    store.create_client(&silent).await.unwrap();
    let sessions: Vec<PlainToken> = (0..4).map(|_| PlainToken::generate()).collect();
    for token in &sessions {
        store.create_session(&new_session(&marie, token)).await.unwrap();
    }
    let family = PlainToken::generate().hash();
    let sign_in = |n: u8, session: &PlainToken, client: &Client| {
        let (store, client, marie, family) = (store.clone(), client.clone(), marie.clone(), family.clone());
        let link = SessionLink {
            session: session.hash(),
            client: client.id.clone(),
            account: marie.id,
            sid: format!("{n:032}"),
        };
        let refresh = refresh_for(n, &client, &marie, &family, Some(session.hash()));
        let grant =
            NewGrant { session: Some(session.hash()), ..grant_for(&format!("j-{n}"), &client, &marie, &family) };
        async move { grants(&store).store_grant(&grant, &refresh, Some(&link)).await.unwrap() }
    };
    assert!(sign_in(1, &sessions[0], &told).await);
    assert!(sign_in(2, &sessions[0], &silent).await);
    assert!(sign_in(3, &sessions[1], &told).await);
    assert!(sign_in(4, &sessions[2], &told).await);
    let offline = refresh_for(9, &told, &marie, &family, None);
    let grant = grant_for("j-9", &told, &marie, &family);
    assert!(grants(&store).store_grant(&grant, &offline, None).await.unwrap());
    let clients = store.session_clients(&sessions[0].hash()).await.unwrap_or_default();
    assert_eq!(
        clients.iter().map(|(c, sid)| (c.id.as_str(), sid.len())).collect::<Vec<_>>(),
        [("a-told", 32), ("b-silent", 32)]
    );

    // A logout: the application with a back channel is told, the other is not; the
    // session's refresh tokens end with it.
    store.delete_session(&sessions[0].hash(), t0(), None).await.unwrap();
    assert_eq!(
        store.clients_with_due_logouts(t0()).await.ok(),
        Some(vec![told.id.clone()]),
        "the silent one owes nothing"
    );
    let due = store.claim_due_logouts(&told.id, t0(), t0() + minutes(1), 10).await.unwrap_or_default();
    assert_eq!(
        due.iter().map(|l| (l.client.as_str(), l.sid.as_str(), l.attempts)).collect::<Vec<_>>(),
        [("a-told", format!("{:032}", 1).as_str(), 1)]
    );
    assert_eq!(
        store.find_refresh_token(&TokenHash::from_stored(format!("{:064}", 1)), &told.id).await.ok(),
        Some(None)
    );
    assert!(
        store.claim_due_logouts(&told.id, t0(), t0() + minutes(1), 10).await.unwrap_or_default().is_empty(),
        "leased"
    );
    store.finish_logout(due[0].id, &LogoutOutcome::Retry("503".to_owned(), t0() + minutes(2)), t0()).await.unwrap();
    assert!(
        store
            .claim_due_logouts(&told.id, t0() + minutes(1), t0() + minutes(3), 10)
            .await
            .unwrap_or_default()
            .is_empty()
    );
    let again = store.claim_due_logouts(&told.id, t0() + minutes(2), t0() + minutes(3), 10).await.unwrap_or_default();
    assert_eq!(again.iter().map(|l| l.attempts).collect::<Vec<_>>(), [2]);
    store.finish_logout(again[0].id, &LogoutOutcome::Delivered("200 OK".to_owned()), t0() + minutes(2)).await.unwrap();
    let log = store.logout_log(10).await.unwrap_or_default();
    assert_eq!(
        log.iter().map(|l| (l.state, l.identifier.as_deref(), l.last_answer.as_deref())).collect::<Vec<_>>(),
        [(LogoutState::Delivered, Some("marie"), Some("200 OK"))]
    );

    // Expiry tells nobody; the other sessions ended (a password changed) tell, and take
    // the offline refresh tokens with them.
    assert_eq!(store.purge_expired_sessions(t0() + minutes(12 * 60)).await.ok(), Some(3), "all expired by then");
    assert!(
        store
            .claim_due_logouts(&told.id, t0() + minutes(3), t0() + minutes(4), 10)
            .await
            .unwrap_or_default()
            .is_empty()
    );
    let kept = store.find_refresh_token(&offline.hash, &told.id).await.ok().flatten();
    assert_eq!(kept.map(|(t, used)| (t.session, used)), Some((None, None)));
    let (kept, other) = (PlainToken::generate(), PlainToken::generate());
    store.create_session(&new_session(&marie, &kept)).await.unwrap();
    store.create_session(&new_session(&marie, &other)).await.unwrap();
    assert!(sign_in(5, &other, &told).await);
    assert_eq!(store.delete_account_sessions(marie.id, Some(&kept.hash()), t0(), None).await.ok(), Some(1));
    let due = store.claim_due_logouts(&told.id, t0() + minutes(3), t0() + minutes(4), 10).await.unwrap_or_default();
    assert_eq!(due.iter().map(|l| l.sid.as_str()).collect::<Vec<_>>(), [format!("{:032}", 5).as_str()]);
    assert_eq!(store.find_refresh_token(&offline.hash, &told.id).await.ok(), Some(None), "offline access ended too");

    // A session that ended before the exchange gets nothing at all.
    assert!(!sign_in(6, &sessions[0], &told).await);
    assert!(store.find_grant("j-6").await.ok().flatten().is_none());
}

async fn a_refresh_token_is_used_once_and_its_replay_revokes_its_family(store: SqlStore) {
    let marie = add(&store, "marie").await;
    let a = client("a-conf");
    store.create_client(&a).await.unwrap();
    let family = PlainToken::generate().hash();
    let first = refresh_for(1, &a, &marie, &family, None);
    assert!(grants(&store).store_grant(&grant_for("j-1", &a, &marie, &family), &first, None).await.unwrap());
    let intruder = ClientId::from_stored("b-intruder".to_owned());
    let next = |n: u8| refresh_for(n, &a, &marie, &family, None);
    let grant = |n: u8| grant_for(&format!("j-{n}"), &a, &marie, &family);
    let rotated = grants(&store).rotate(&first.hash, &intruder, &grant(9), &next(9), t0()).await;
    assert_eq!(rotated.ok(), Some(Rotation::Gone), "another client's: untouched");
    // Many at once: exactly one rotates it; the others find it used and revoke the family,
    // the successor the first one stored included.
    let tries = (2..8).map(|n| {
        let (store, hash, id, grant, next) = (store.clone(), first.hash.clone(), a.id.clone(), grant(n), next(n));
        tokio::spawn(async move { grants(&store).rotate(&hash, &id, &grant, &next, t0()).await })
    });
    let outcomes: Vec<Rotation> =
        futures_util::future::join_all(tries).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == Rotation::Rotated).count(), 1, "{outcomes:?}");
    assert!(outcomes.contains(&Rotation::Replayed), "{outcomes:?}");
    for n in 2..8 {
        let successor = store.find_refresh_token(&next(n).hash, &a.id).await.ok().flatten();
        assert!(successor.is_none(), "no successor survives a replay: {n}");
    }
    assert!(
        store.find_grant("j-1").await.ok().flatten().and_then(|g| g.revoked_at).is_some(),
        "the family's access tokens"
    );
    let again = grants(&store).rotate(&first.hash, &a.id, &grant(8), &next(8), t0()).await;
    assert_eq!(again.ok(), Some(Rotation::Gone));
}

async fn client_as_stored(store: &SqlStore, id: &str) -> Client {
    let stored = store.find_client(&ClientId::from_stored(id.to_owned())).await.ok().flatten();
    let stored = stored.unwrap_or_else(|| panic!("no client {id}"));
    assert_eq!(Client { secret_hash: None, ..stored.clone() }, Client { secret_hash: None, ..client(id) });
    stored
}

async fn an_oidc_code_is_used_once_and_its_reuse_revokes_its_grants(store: SqlStore) {
    let marie = add(&store, "marie").await;
    let a = client("a-conf");
    store.create_client(&a).await.unwrap();
    let code = PlainToken::generate().hash();
    let issued = code_for(&a, &marie, &code);
    store.store_code(&issued).await.unwrap();

    // Presented by another client: unknown to it, and left untouched.
    let intruder = ClientId::from_stored("b-intruder".to_owned());
    assert_eq!(grants(&store).use_code(&code, &intruder, t0()).await.ok(), Some(CodeUse::Unknown));
    assert_eq!(store.find_authorization_code(&code, &intruder).await.ok(), Some(None));
    assert_eq!(store.find_authorization_code(&code, &a.id).await.ok(), Some(Some(issued.clone())), "read, not used");

    // Many at once: exactly one gets the first use.
    let tries = (0..8).map(|_| {
        let (store, code, id) = (store.clone(), code.clone(), a.id.clone());
        tokio::spawn(async move { grants(&store).use_code(&code, &id, t0()).await })
    });
    let outcomes: Vec<CodeUse> =
        futures_util::future::join_all(tries).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == CodeUse::First(Box::new(issued.clone()))).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == CodeUse::Again).count(), 7);

    // A grant stored after the reuse is born revoked; one stored before is revoked by the next reuse.
    let refresh = refresh_for(1, &a, &marie, &code, None);
    grants(&store).store_grant(&grant_for("late", &a, &marie, &code), &refresh, None).await.unwrap();
    assert_eq!(store.find_refresh_token(&refresh.hash, &a.id).await.ok(), Some(None), "no refresh token is born to it");
    let late = store.find_grant("late").await.ok().flatten().unwrap_or_else(|| panic!("no grant"));
    assert!(late.revoked_at.is_some(), "born revoked");

    let other = PlainToken::generate().hash();
    store.store_code(&code_for(&a, &marie, &other)).await.unwrap();
    assert!(matches!(grants(&store).use_code(&other, &a.id, t0()).await, Ok(CodeUse::First(_))));
    let refresh = refresh_for(2, &a, &marie, &other, None);
    grants(&store).store_grant(&grant_for("first", &a, &marie, &other), &refresh, None).await.unwrap();
    assert_eq!(store.find_grant("first").await.ok().flatten().and_then(|g| g.revoked_at), None);
    let later = t0() + SignedDuration::from_secs(5);
    assert_eq!(grants(&store).use_code(&other, &a.id, later).await.ok(), Some(CodeUse::Again));
    assert_eq!(store.find_grant("first").await.ok().flatten().and_then(|g| g.revoked_at), Some(later));
    assert_eq!(store.find_refresh_token(&refresh.hash, &a.id).await.ok(), Some(None), "its refresh family went too");

    assert_eq!(grants(&store).use_code(&PlainToken::generate().hash(), &a.id, t0()).await.ok(), Some(CodeUse::Unknown));
    let purged = store.purge_oidc(t0() + SignedDuration::from_hours(1)).await.unwrap_or_default();
    assert_eq!(purged, 4, "two codes and two grants, all expired");
}

async fn the_access_epoch_moves_with_what_the_gate_caches(store: SqlStore) {
    let marie = add(&store, "marie").await;
    let token = PlainToken::generate();
    store.create_session(&new_session(&marie, &token)).await.unwrap();
    let epoch = || async { store.access_epoch().await.unwrap() };
    let mut last = epoch().await;
    let mut moved = |now: i64, what: &str| {
        assert!(now > last, "{what} moves the epoch");
        last = now;
    };
    let bureau = GroupName::parse("bureau").unwrap();
    let bureau = store.create_group(&bureau, "", t0()).await.unwrap();
    groups(&store).set_membership(bureau.id, marie.id, true, staff_event(&marie, AuditKind::GroupJoined)).await.ok();
    moved(epoch().await, "joining a group");
    groups(&store).set_membership(bureau.id, marie.id, false, staff_event(&marie, AuditKind::GroupLeft)).await.ok();
    moved(epoch().await, "leaving it");
    store.delete_session(&token.hash(), t0(), None).await.unwrap();
    moved(epoch().await, "ending a session");
    let event = staff_event(&marie, AuditKind::AccountDisabled);
    changes(&store).set_disabled(marie.id, true, event, Reach::Anyone).await.unwrap();
    moved(epoch().await, "disabling the account");
    let quiet = epoch().await;
    store.find_session(&token.hash(), t0()).await.ok();
    assert_eq!(epoch().await, quiet, "reading moves nothing");
}

async fn a_kept_secret_is_the_first_one_stored(store: SqlStore) {
    use secrecy::{ExposeSecret as _, SecretString};
    assert!(store.find_secret("oidc-rs256").await.ok().flatten().is_none());
    let first = store.keep_secret("oidc-rs256", &SecretString::from("un"), t0()).await;
    let second = store.keep_secret("oidc-rs256", &SecretString::from("deux"), t0()).await;
    assert_eq!(first.ok().map(|s| s.expose_secret().to_owned()).as_deref(), Some("un"));
    assert_eq!(second.ok().map(|s| s.expose_secret().to_owned()).as_deref(), Some("un"));
}

async fn groups_hold_members_and_say_so(store: SqlStore) {
    let marie = add(&store, "marie").await;
    let name = |n: &str| GroupName::parse(n).unwrap();
    let bureau = store.create_group(&name("bureau"), "Le bureau", t0()).await.unwrap();
    let taken = store.create_group(&name("bureau"), "", t0()).await;
    assert!(matches!(taken, Err(StoreError::Conflict(Conflict::Group))), "{taken:?}");
    let adherents = store.create_group(&name("adherents"), "", t0()).await.unwrap();
    let event = || staff_event(&marie, AuditKind::GroupJoined);
    assert_eq!(groups(&store).set_membership(bureau.id, marie.id, true, event()).await.ok(), Some(true));
    assert_eq!(groups(&store).set_membership(bureau.id, marie.id, true, event()).await.ok(), Some(false), "already in");
    assert_eq!(groups(&store).set_membership(adherents.id, marie.id, true, event()).await.ok(), Some(true));
    let names: Vec<String> =
        store.account_groups(marie.id).await.unwrap_or_default().iter().map(|g| g.to_string()).collect();
    assert_eq!(names, ["adherents", "bureau"]);
    let listed: Vec<(String, u64)> =
        store.list_groups().await.unwrap_or_default().into_iter().map(|g| (g.name.to_string(), g.members)).collect();
    assert_eq!(listed, [("adherents".to_owned(), 1), ("bureau".to_owned(), 1)]);
    assert_eq!(
        store.find_group(&name("bureau")).await.ok().flatten().map(|g| g.description),
        Some("Le bureau".to_owned())
    );
    let left =
        groups(&store).set_membership(bureau.id, marie.id, false, staff_event(&marie, AuditKind::GroupLeft)).await;
    assert_eq!(left.ok(), Some(true));
    assert_eq!(store.remove_group(adherents.id).await.ok(), Some(true));
    assert!(store.account_groups(marie.id).await.unwrap_or_default().is_empty());
    let events = store.account_events(marie.id, 10).await.unwrap_or_default();
    assert_eq!(events.iter().filter(|e| matches!(e.kind, AuditKind::GroupJoined | AuditKind::GroupLeft)).count(), 3);
}

/// TLS to PostgreSQL: `.ci/run` gives the local server a certificate from its own CA and
/// names that CA in `GUICHET_TEST_POSTGRES_TLS_ROOT`.
#[tokio::test]
async fn postgres_is_reached_over_tls_and_its_certificate_is_checked() {
    let (Ok(url), Ok(root)) =
        (std::env::var("GUICHET_TEST_POSTGRES_URL"), std::env::var("GUICHET_TEST_POSTGRES_TLS_ROOT"))
    else {
        eprintln!("SKIPPED (TLS to PostgreSQL): set GUICHET_TEST_POSTGRES_URL and GUICHET_TEST_POSTGRES_TLS_ROOT");
        return;
    };
    let with = |query: &str| {
        let separator = if url.contains('?') { '&' } else { '?' };
        guichet_store::DatabaseUrl::parse(&format!("{url}{separator}{query}")).unwrap()
    };
    let store = SqlStore::connect(&with(&format!("sslmode=verify-full&sslrootcert={root}")))
        .await
        .unwrap_or_else(|e| panic!("verify-full with the right CA: {e:#}"));
    assert_eq!(store.encrypted().await.ok(), Some(true), "the connection is encrypted");
    store.close().await;
    let plain = SqlStore::connect(&with("sslmode=disable")).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(plain.encrypted().await.ok(), Some(false), "and the check tells them apart");
    plain.close().await;
    let wrong = SqlStore::connect(&with("sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt")).await;
    assert!(wrong.is_err(), "a certificate from another CA is refused");
}

/// Two instances: two stores (two pools) on one database, the rules racing over both.
async fn two_instances_lock_once_and_redeem_once(db: TestDatabase) {
    let (one, two) = (Arc::new(db.store().await), Arc::new(db.store().await));
    let account = add(&one, "marie").await;
    forty_failures_lock_once(&[Arc::clone(&one), Arc::clone(&two)], &account).await;
    let code = new_code(&one, &account, t0() + minutes(60)).await;
    let tabs = (0..20).map(|n| {
        let store = Arc::clone(if n % 2 == 0 { &one } else { &two });
        let hash = code.hash();
        tokio::spawn(async move { rules(&store).redeem_code(&hash, &some_hash(), &context(), t0()).await })
    });
    let results: Vec<_> = futures_util::future::join_all(tabs).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| *r == Err(CodeError::Used)));
    one.close().await;
    two.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_sqlite_lock_once_and_redeem_once() {
    two_instances_lock_once_and_redeem_once(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_lock_once_and_redeem_once() {
    let Some(db) = TestDatabase::postgres().await else { return };
    two_instances_lock_once_and_redeem_once(db).await;
}

/// Two administrators each disabling another at once, among three: both go through,
/// neither waits on the other forever (the active administrators are held in one order,
/// before the target).
async fn admin_changes_at_once_do_not_deadlock(db: TestDatabase) {
    let store = db.store().await;
    let mut admins = Vec::new();
    for name in ["anne", "bruno", "chloe"] {
        let account = add(&store, name).await;
        changes(&store).set_role(account.id, Role::Admin, staff_event(&account, AuditKind::RoleChanged)).await.unwrap();
        admins.push(account);
    }
    for _ in 0..5 {
        let both = [(&admins[1], true), (&admins[2], true)].map(|(who, disabled)| {
            let store = store.clone();
            let event = staff_event(who, AuditKind::AccountDisabled);
            let id = who.id;
            async move { changes(&store).set_disabled(id, disabled, event, Reach::Anyone).await }
        });
        let [first, second] = both;
        let (first, second) = tokio::join!(first, second);
        assert_eq!((first.unwrap(), second.unwrap()), (Guarded::Done, Guarded::Done));
        for who in &admins[1..] {
            changes(&store)
                .set_disabled(who.id, false, staff_event(who, AuditKind::AccountEnabled), Reach::Anyone)
                .await
                .unwrap();
        }
    }
    store.close().await;
}

/// Two imports updating the same 450 accounts (listed in opposite orders, so that each
/// names them in other batches of parameters) and an administrator disabling one of them,
/// all at once: all go through (the accounts are held in id order, after the active
/// administrators).
async fn imports_at_once_do_not_deadlock(db: TestDatabase) {
    let store = db.store().await;
    let rows = |round: usize| -> Vec<ImportRow> {
        (0..450)
            .map(|n| ImportRow {
                name: DisplayName::parse(&format!("Membre {n} {round}")).unwrap(),
                ..import_row(&format!("membre{n}"), &format!("membre{n}@chu.example.fr"), None)
            })
            .collect()
    };
    let created = importer(&store).import(&rows(0), ImportOptions::default()).await.unwrap();
    assert!(created.iter().all(|o| *o == ImportOutcome::Created));
    let update = ImportOptions { update: true, ..ImportOptions::default() };
    // With no administrator yet, only the order of the ids keeps the two imports apart.
    let (forward, mut backward, both) = (rows(1), rows(2), importer(&store));
    backward.reverse();
    let (one, two) = tokio::join!(both.import(&forward, update), both.import(&backward, update));
    assert!(one.unwrap().iter().chain(&two.unwrap()).all(|o| *o == ImportOutcome::Updated));
    let target = store.find_account_by_identifier(&Identifier::parse("membre7").unwrap()).await.unwrap().unwrap();
    let admin = add(&store, "anne").await;
    changes(&store).set_role(admin.id, Role::Admin, staff_event(&admin, AuditKind::RoleChanged)).await.unwrap();
    for round in 2..=4 {
        let forward = rows(round * 2);
        let mut backward = rows(round * 2 + 1);
        backward.reverse();
        let disabled = round % 2 == 1;
        let event = staff_event(&target, if disabled { AuditKind::AccountDisabled } else { AuditKind::AccountEnabled });
        let (importer, changes) = (importer(&store), changes(&store));
        let (one, two, three) = tokio::join!(
            importer.import(&forward, update),
            importer.import(&backward, update),
            changes.set_disabled(target.id, disabled, event, Reach::Anyone),
        );
        assert!(one.unwrap().iter().all(|o| *o == ImportOutcome::Updated));
        assert!(two.unwrap().iter().all(|o| *o == ImportOutcome::Updated));
        assert_eq!(three.unwrap(), Guarded::Done);
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imports_on_postgres_at_once_do_not_deadlock() {
    let Some(db) = TestDatabase::postgres().await else { return };
    imports_at_once_do_not_deadlock(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imports_on_sqlite_at_once_do_not_deadlock() {
    imports_at_once_do_not_deadlock(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_changes_on_postgres_at_once_do_not_deadlock() {
    let Some(db) = TestDatabase::postgres().await else { return };
    admin_changes_at_once_do_not_deadlock(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_changes_on_sqlite_at_once_do_not_deadlock() {
    admin_changes_at_once_do_not_deadlock(TestDatabase::sqlite()).await;
}

/// A TOTP secret waits unconfirmed, then records its steps; backup codes work once;
/// removing the second factors takes the secret, the codes and the keys at once.
async fn second_factors_are_written_used_once_and_removed_together(store: SqlStore) {
    use guichet_core::ports::{StoredKey, Transactions as _};
    let account = add(&store, "marie").await;
    let other = add(&store, "paul").await;
    let mut work = store.begin().await.unwrap();
    work.hold_account(account.id).await.unwrap();
    work.put_totp(account.id, "sealed-1", t0()).await.unwrap();
    let codes: Vec<TokenHash> = (0..3).map(|_| PlainToken::generate().hash()).collect();
    work.replace_backup_codes(account.id, &codes, t0()).await.unwrap();
    let key = |id: &str, owner: &Account| StoredKey {
        credential_id: id.to_owned(),
        account: owner.id,
        name: "Téléphone".to_owned(),
        passkey: "{}".to_owned(),
        created_at: t0(),
        last_used_at: None,
    };
    assert!(work.insert_key(&key("cred-1", &account)).await.unwrap());
    assert!(!work.insert_key(&key("cred-1", &other)).await.unwrap(), "a credential belongs to one account");
    work.commit().await.unwrap();
    let status = store.second_factors(account.id).await.unwrap();
    assert_eq!(status.totp, guichet_core::second_factor::TotpState::Pending);
    assert_eq!((status.backup_codes_left, status.keys), (3, 1));
    assert!(status.has_second(), "a key is a second factor on its own");

    let mut work = store.begin().await.unwrap();
    work.confirm_totp(account.id, 100, t0()).await.unwrap();
    work.set_totp_step(account.id, 101).await.unwrap();
    let stored = work.totp(account.id).await.unwrap().unwrap();
    assert_eq!((stored.sealed.as_str(), stored.confirmed_at, stored.last_step), ("sealed-1", Some(t0()), 101));
    assert!(work.use_backup_code(account.id, &codes[0], t0()).await.unwrap());
    assert!(!work.use_backup_code(account.id, &codes[0], t0()).await.unwrap(), "once");
    assert!(!work.use_backup_code(other.id, &codes[1], t0()).await.unwrap(), "another's code is nothing");
    assert_eq!(work.count_keys(account.id).await.unwrap(), 1);
    work.commit().await.unwrap();
    assert_eq!(store.second_factors(account.id).await.unwrap().backup_codes_left, 2);

    let mut work = store.begin().await.unwrap();
    // Enrolling again replaces the secret, unconfirmed, its steps forgotten.
    work.put_totp(account.id, "sealed-2", t0()).await.unwrap();
    let again = work.totp(account.id).await.unwrap().unwrap();
    assert_eq!((again.confirmed_at, again.last_step), (None, 0));
    assert_eq!(work.remove_second_factors(account.id).await.unwrap(), 1, "one key went");
    assert!(work.totp(account.id).await.unwrap().is_none());
    work.commit().await.unwrap();
    let status = store.second_factors(account.id).await.unwrap();
    assert_eq!(
        (status.totp, status.backup_codes_left, status.keys),
        (guichet_core::second_factor::TotpState::None, 0, 0)
    );
}

/// A WebAuthn ceremony is taken once, for its purpose, before it expires.
async fn a_ceremony_serves_once_and_only_as_it_was_made(store: SqlStore) {
    use guichet_core::ports::{CeremonyPurpose, PasskeyStore as _};
    let account = add(&store, "marie").await;
    let later = t0() + SignedDuration::from_mins(5);
    let token = PlainToken::generate().hash();
    store.put_ceremony(&token, CeremonyPurpose::Register, Some(account.id), "{\"s\":1}", later).await.unwrap();
    let wrong = store.take_ceremony(&token, CeremonyPurpose::Login, t0()).await.unwrap();
    assert!(wrong.is_none(), "not for another purpose");
    assert!(store.take_ceremony(&token, CeremonyPurpose::Register, t0()).await.unwrap().is_none(), "and then gone");
    let token = PlainToken::generate().hash();
    store.put_ceremony(&token, CeremonyPurpose::Login, None, "{}", later).await.unwrap();
    let taken = store.take_ceremony(&token, CeremonyPurpose::Login, t0()).await.unwrap().unwrap();
    assert_eq!((taken.account, taken.state.as_str()), (None, "{}"));
    assert!(store.take_ceremony(&token, CeremonyPurpose::Login, t0()).await.unwrap().is_none(), "once");
    let token = PlainToken::generate().hash();
    store.put_ceremony(&token, CeremonyPurpose::SecondFactor, Some(account.id), "{}", later).await.unwrap();
    assert!(store.take_ceremony(&token, CeremonyPurpose::SecondFactor, later).await.unwrap().is_none(), "expired");
    assert_eq!(store.purge_ceremonies(later).await.unwrap(), 0, "taken ones are gone already");
}
