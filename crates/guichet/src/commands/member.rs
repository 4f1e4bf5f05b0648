//! `guichet member …`.

use std::io::Read as _;
use std::sync::Arc;

use anyhow::Context as _;
use guichet_core::Timestamp;
use guichet_core::account::Account;
use guichet_core::audit::{Actor, AuditKind, RequestContext};
use guichet_core::clock::Clock;
use guichet_core::mail::MailState;
use guichet_core::members::AddMember;
use secrecy::SecretString;

use crate::app::Application;
use crate::cli::{AddArgs, MemberCommand};
use crate::config::Settings;

/// `member erase`: now, by the operator; the applications are told before the command
/// ends (a running `serve` would tell them within seconds too).
async fn erase(app: &Application, identifier: &str) -> anyhow::Result<()> {
    use guichet_core::personal_data::Erased;
    let account = app.state.members.find(identifier).await?;
    let now = app.state.clock.now();
    match app.state.privacy.erase(account.id, Actor::Operator, &RequestContext::default(), now).await? {
        Erased::Done => {}
        Erased::NotFound | Erased::NotDue => anyhow::bail!("{identifier}: no such account (erased already?)"),
        Erased::Refused(_) => anyhow::bail!("{}: this is the last active administrator: it stays", account.identifier),
    }
    let told = match app.state.messenger.deliver_due().await {
        Ok(told) => format!("{told} back-channel logout(s) delivered"),
        Err(error) => format!("back-channel logouts queued ({error}); a running guichet serve delivers them"),
    };
    say!("{}: erased (sessions and tokens ended, {told}; audit lines kept under a pseudonym)", account.identifier);
    Ok(())
}

/// Runs a `member` subcommand.
pub async fn run(command: MemberCommand, settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let app = Application::build(settings, clock).await?;
    let zone = &settings.time_zone;
    let result = match command {
        MemberCommand::Add(args) => add(&app, args).await,
        MemberCommand::List { locked } => {
            for account in app.state.members.list(locked).await? {
                say!("{}", list_line(&account, zone, app.state.clock.now()));
            }
            Ok(())
        }
        MemberCommand::Show { identifier } => show(&app, &identifier, settings).await,
        MemberCommand::TemporaryPassword { identifier } => temporary_password(&app, &identifier).await,
        MemberCommand::Import { file, invite, update, update_passwords, create_groups } => {
            let options = guichet_core::import::ImportOptions { invite, update, update_passwords, create_groups };
            crate::commands::import::run(&app, &file, options).await
        }
        MemberCommand::ResetSecondFactor { identifier } => {
            let account = app.state.members.find(&identifier).await?;
            let who = account.identifier.to_string();
            if app.state.second_factors.reset_by_operator(account.id).await? {
                say!("{who}: second factor removed (its sessions are ended, a notice is mailed)");
            } else {
                say!("{who} had no second factor");
            }
            Ok(())
        }
        MemberCommand::Erase { identifier } => erase(&app, &identifier).await,
        MemberCommand::Disable { identifier } => set_disabled(&app, &identifier, true).await,
        MemberCommand::Enable { identifier } => set_disabled(&app, &identifier, false).await,
        MemberCommand::Join { identifier, group } => change_group(&app, &identifier, &group, true).await,
        MemberCommand::Leave { identifier, group } => change_group(&app, &identifier, &group, false).await,
        MemberCommand::Unlock { identifier } => {
            if app.state.members.unlock(&identifier, Actor::Operator, RequestContext::default()).await? {
                say!("{} unlocked", identifier.trim().to_lowercase());
            } else {
                say!("{} was not locked (its failure count is cleared)", identifier.trim().to_lowercase());
            }
            Ok(())
        }
    };
    app.store.close().await;
    result
}

async fn set_disabled(app: &Application, identifier: &str, disabled: bool) -> anyhow::Result<()> {
    app.state.members.set_disabled(identifier, disabled).await?;
    let who = identifier.trim().to_lowercase();
    say!("{who} {}", if disabled { "disabled (its sessions are ended)" } else { "enabled" });
    Ok(())
}

async fn temporary_password(app: &Application, identifier: &str) -> anyhow::Result<()> {
    let account = app.state.members.issue_temporary_password(identifier).await?;
    app.state.postman.deliver_due().await?;
    report_last_mail(app, &account, "temporary password").await
}

/// Says how the account's latest message went.
async fn report_last_mail(app: &Application, account: &Account, what: &str) -> anyhow::Result<()> {
    match app.state.members.mail_log(account.id, 1).await?.first() {
        Some(entry) if entry.state == MailState::Sent => {
            say!("{what} sent to {}: {}", entry.recipient, entry.last_answer.as_deref().unwrap_or_default());
        }
        Some(entry) => say!(
            "{what} queued, not sent yet ({}); `guichet serve` will keep trying",
            entry.last_answer.as_deref().unwrap_or("waiting")
        ),
        None => say!("{what} queued"),
    }
    Ok(())
}

async fn add(app: &Application, args: AddArgs) -> anyhow::Result<()> {
    let password = if args.password_stdin { Some(read_password_from_stdin()?) } else { None };
    let has_password = password.is_some();
    let request = AddMember {
        identifier: args.identifier,
        email: args.email,
        name: args.name,
        given_name: args.given_name,
        family_name: args.family_name,
        role: args.role.into(),
        password,
        invite: args.invite,
        rpps: args.rpps.unwrap_or_default(),
    };
    let account = app.state.members.add(request, Actor::Operator, RequestContext::default()).await?;
    say!("created {} ({}, {})", account.identifier, account.role, account.email);
    if args.invite {
        // Send now rather than wait for a server: say how it went.
        app.state.postman.deliver_due().await?;
        report_last_mail(app, &account, "invitation").await?;
    } else if !has_password {
        say!("It has no password yet: use --invite to mail a set-your-password code, or --password-stdin.");
    }
    Ok(())
}

/// One line of standard input, without its line ending; never echoed.
fn read_password_from_stdin() -> anyhow::Result<SecretString> {
    let mut raw = String::new();
    std::io::stdin().read_to_string(&mut raw).context("could not read the password from standard input")?;
    let line = raw.strip_suffix('\n').unwrap_or(&raw);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(SecretString::from(line.to_owned()))
}

/// `member join` and `member leave`.
async fn change_group(app: &Application, identifier: &str, group: &str, join: bool) -> anyhow::Result<()> {
    let groups = &app.state.groups;
    let account = groups.account(identifier).await?;
    let changed = groups.change(account, group, join, Actor::Operator, &RequestContext::default()).await?;
    let (who, group) = (identifier.trim().to_lowercase(), group.trim().to_lowercase());
    let said = match (join, changed) {
        (true, true) => format!("{who} joined {group}"),
        (true, false) => format!("{who} was already in {group}"),
        (false, true) => format!("{who} left {group}"),
        (false, false) => format!("{who} was not in {group}"),
    };
    say!("{said}");
    Ok(())
}

fn local(at: Timestamp, zone: &jiff::tz::TimeZone) -> String {
    at.to_zoned_datetime(zone.clone()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
}

fn status(account: &Account, zone: &jiff::tz::TimeZone, now: Timestamp) -> String {
    match account.locked_until {
        Some(until) if until > now => format!("locked until {}", local(until, zone)),
        _ if account.password_hash.is_none() => "no password yet".to_owned(),
        _ => "active".to_owned(),
    }
}

fn list_line(account: &Account, zone: &jiff::tz::TimeZone, now: Timestamp) -> String {
    format!("{:<24} {:<10} {:<36} {}", account.identifier, account.role, account.email, status(account, zone, now))
}

async fn show(app: &Application, identifier: &str, settings: &Settings) -> anyhow::Result<()> {
    let zone = &settings.time_zone;
    let status_of = app.state.members.status(identifier, 20).await?;
    let account = &status_of.account;
    let now = app.state.clock.now();
    let window_start = now.saturating_sub(settings.lockout_window).unwrap_or(now);
    let recent_failures = status_of
        .recent_events
        .iter()
        .take_while(|e| e.kind != AuditKind::LoginSucceeded && e.kind != AuditKind::AccountUnlocked)
        .filter(|e| e.kind == AuditKind::LoginFailed && e.at >= window_start)
        .count();
    let pending_codes = status_of.pending_codes;
    say!("identifier:      {}", account.identifier);
    say!("name:            {}", account.display_name.as_str());
    say!("email:           {}", account.email);
    say!("role:            {}", account.role);
    let groups = app.state.groups.of(account.id).await?;
    let groups: Vec<&str> = groups.iter().map(|g| g.as_str()).collect();
    say!("groups:          {}", if groups.is_empty() { "(none)".to_owned() } else { groups.join(", ") });
    say!("status:          {}", status(account, zone, now));
    say!("locked until:    {}", account.locked_until.filter(|u| *u > now).map_or("-".to_owned(), |u| local(u, zone)));
    say!(
        "recent failures: {recent_failures} in the last {}",
        humantime::format_duration(settings.lockout_window.unsigned_abs())
    );
    // A temporary password waiting: the login that uses it must choose a new password.
    let temporary = account.temporary_password_at(now).and(account.temporary_password_until);
    say!(
        "must change:     {}",
        temporary.map_or("no".to_owned(), |until| format!("yes (temporary password until {})", local(until, zone)))
    );
    say!("secours address: {}", account.recovery_email.as_ref().map_or("-".to_owned(), |e| e.masked()));
    say!("RPPS:            {}", account.rpps.as_ref().map_or("-".to_owned(), ToString::to_string));
    say!("pending codes:   {pending_codes}");
    let factors = app.state.second_factors.status(account.id).await?;
    let totp = match factors.totp {
        guichet_core::second_factor::TotpState::Active(since) => format!("phone app since {}", local(since, zone)),
        guichet_core::second_factor::TotpState::Pending | guichet_core::second_factor::TotpState::None => {
            "-".to_owned()
        }
    };
    say!("second factor:   {totp}; keys: {}; backup codes left: {}", factors.keys, factors.backup_codes_left);
    say!("last login:      {}", account.last_login_at.map_or("never".to_owned(), |at| local(at, zone)));
    say!("created:         {}", local(account.created_at, zone));
    if let Some(at) = account.erase_at {
        say!("erasure:         asked for; done on {} unless cancelled", local(at, zone));
    }
    say!("recent events:");
    for event in &status_of.recent_events {
        let from = event.context.address.map(|a| format!(" from {a}")).unwrap_or_default();
        let by = match event.actor {
            Actor::Operator => " by the operator".to_owned(),
            Actor::Staff(id) => format!(" by staff #{}", id.get()),
            Actor::Member | Actor::System => String::new(),
        };
        // The stored form: plain words, like the kind beside it.
        let detail = event.detail.as_ref().map(|d| format!(" ({})", d.to_stored())).unwrap_or_default();
        say!("  {}  {}{from}{by}{detail}", local(event.at, zone), event.kind.as_str());
    }
    Ok(())
}
