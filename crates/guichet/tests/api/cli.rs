//! The `guichet` command, run as a separate process on the test's database.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app_with};

/// Runs the binary against the app's database, with `stdin` as standard input.
pub fn guichet(app: &TestApp, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(args)
        .env("GUICHET_DATABASE_URL", app.database_url())
        .env("GUICHET_MAIL_TRANSPORT", app.mail.url())
        .env("GUICHET_PUBLIC_URL", &app.address)
        .env_remove("GUICHET_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("guichet: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input.as_bytes());
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("guichet: {e}"))
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// Starts `guichet serve` on `database` and `port` (mail into `dir`), with `extra` settings.
pub fn serve_on(database: &str, port: u16, dir: &std::path::Path, extra: &[(&str, &str)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_guichet"))
        .arg("serve")
        .env("GUICHET_DATABASE_URL", database)
        .env("GUICHET_LISTEN", format!("127.0.0.1:{port}"))
        .env("GUICHET_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("GUICHET_MAIL_TRANSPORT", format!("file:{}/outbox", dir.display()))
        .envs(extra.iter().copied())
        .env_remove("GUICHET_CONFIG")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("serve.log"))
                .map_or_else(|_| Stdio::null(), Stdio::from),
        )
        .spawn()
        .unwrap_or_else(|e| panic!("guichet serve: {e}"))
}

/// Waits (up to ten seconds) for a guichet started at `base` to answer `/healthz`.
pub async fn healthy(client: &reqwest::Client, base: &str) -> bool {
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn an_operator_adds_a_member_who_can_then_log_in(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let args = [
        "member",
        "add",
        "Jean.Martin",
        "--email",
        "Jean.Martin@CHU.example.fr",
        "--name",
        "Jean Martin",
        "--password-stdin",
    ];
    let output = guichet(&app, &args, Some(&format!("{PASSWORD}\n")));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().next(), Some("created jean.martin (member, jean.martin@chu.example.fr)"));
    assert_eq!(app.login("jean.martin", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

/// `member add --rpps`: the national professional identifier an upstream login will
/// match, shown by `member show`, one account's only, and 11 digits.
async fn an_operator_records_a_members_rpps_number(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let add = |identifier: &str, rpps: &str| {
        let email = format!("{identifier}@chu.example.fr");
        guichet(&app, &["member", "add", identifier, "--email", &email, "--rpps", rpps], None)
    };
    let added = add("jean.martin", "10 0012 3456 7");
    assert!(added.status.success(), "{}", stderr(&added));
    let shown = guichet(&app, &["member", "show", "jean.martin"], None);
    assert!(stdout(&shown).contains("RPPS:            10001234567"), "{}", stdout(&shown));
    let twice = add("jeanne.martin", "810001234567");
    assert_eq!(stderr(&twice).trim(), "error: this RPPS number is already another account's");
    let short = add("paul.martin", "1234");
    assert_eq!(stderr(&short).trim(), "error: RPPS number refused: 11 digits");
    let page = app.app.state.members.find("jean.martin").await.unwrap();
    assert_eq!(page.rpps.map(|r| r.to_string()).as_deref(), Some("10001234567"));
}

async fn duplicates_are_refused_in_one_line(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let same_identifier = guichet(&app, &["member", "add", "MARIE", "--email", "other@example.org"], None);
    assert!(!same_identifier.status.success());
    assert_eq!(stderr(&same_identifier).trim(), "error: this identifier is taken");
    let same_email = guichet(&app, &["member", "add", "marie2", "--email", "Marie@chu.example.fr"], None);
    assert!(!same_email.status.success());
    assert_eq!(stderr(&same_email).trim(), "error: this address is already another account's");
}

async fn groups_are_made_joined_listed_and_removed(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    let made = guichet(&app, &["group", "add", "Bureau", "--description", "Le bureau de l'association"], None);
    assert!(made.status.success(), "{}", stderr(&made));
    assert_eq!(stdout(&made).trim(), "created group bureau");
    let again = guichet(&app, &["group", "add", "bureau"], None);
    assert!(!again.status.success());
    assert_eq!(stderr(&again).trim(), "error: this group already exists");
    assert_eq!(stdout(&guichet(&app, &["member", "join", "marie", "bureau"], None)).trim(), "marie joined bureau");
    assert_eq!(
        stdout(&guichet(&app, &["member", "join", "marie", "bureau"], None)).trim(),
        "marie was already in bureau"
    );
    let unknown = guichet(&app, &["member", "join", "marie", "inconnu"], None);
    assert_eq!(stderr(&unknown).trim(), "error: no group is named \"inconnu\" (guichet group list shows them)");
    assert!(stdout(&guichet(&app, &["member", "show", "marie"], None)).contains("groups:          bureau"));
    let list = stdout(&guichet(&app, &["group", "list"], None));
    assert!(list.contains("bureau") && list.contains("1 member(s)") && list.contains("Le bureau"), "{list}");
    assert_eq!(stdout(&guichet(&app, &["member", "leave", "marie", "bureau"], None)).trim(), "marie left bureau");
    assert!(guichet(&app, &["group", "remove", "bureau"], None).status.success());
    assert!(stdout(&guichet(&app, &["group", "list"], None)).trim().is_empty());
}

async fn an_import_puts_members_in_their_groups(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    for group in ["adherents", "bureau"] {
        assert!(guichet(&app, &["group", "add", group], None).status.success());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members.csv");
    let csv = "identifier,email,name,role,groups\n\
               marie,marie@chu.example.fr,Marie,,adherents | Bureau\n\
               paul,paul@chu.example.fr,Paul,member,\n\
               zoe,zoe@chu.example.fr,Zoé,,adherents|burau\n";
    std::fs::write(&file, csv).unwrap();
    let output = guichet(&app, &["member", "import", &file.display().to_string()], None);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(report.contains("created 2, updated 0, unchanged 0, rejected 1"), "{report}");
    assert!(report.contains(r#"line 4: no group is named "burau""#), "{report}");
    assert!(stdout(&guichet(&app, &["member", "show", "marie"], None)).contains("groups:          adherents, bureau"));
    assert!(stdout(&guichet(&app, &["member", "show", "paul"], None)).contains("groups:          (none)"));
    assert!(!guichet(&app, &["member", "show", "zoe"], None).status.success(), "a misspelt group: no account");
}

async fn given_and_family_names_come_from_the_command_and_the_file(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let added = guichet(
        &app,
        &[
            "member",
            "add",
            "jean",
            "--email",
            "jean@chu.example.fr",
            "--given-name",
            "Jean",
            "--family-name",
            "Le Gall",
        ],
        None,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let jean = app.account("jean").await;
    assert_eq!(
        (jean.names.given.as_str(), jean.names.family.as_str(), jean.display_name.as_str()),
        ("Jean", "Le Gall", "Jean Le Gall"),
        "the display name is their join"
    );
    let both = guichet(
        &app,
        &["member", "add", "anne", "--email", "anne@chu.example.fr", "--name", "Dr Anne", "--given-name", "Anne"],
        None,
    );
    assert!(!both.status.success());
    assert!(stderr(&both).contains("--name"), "says what to do: {}", stderr(&both));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members.csv");
    std::fs::write(&file, "identifier;email;given_name;family_name\nzoe;zoe@chu.example.fr;Zoé;Bérard\n").unwrap();
    let imported = guichet(&app, &["member", "import", &file.display().to_string()], None);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let zoe = app.account("zoe").await;
    assert_eq!(
        (zoe.names.given.as_str(), zoe.names.family.as_str(), zoe.display_name.as_str()),
        ("Zoé", "Bérard", "Zoé Bérard")
    );
}

async fn the_operator_disables_and_enables_an_account(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::SEE_OTHER);
    let disabled = guichet(&app, &["member", "disable", "marie"], None);
    assert!(disabled.status.success(), "{}", stderr(&disabled));
    assert_eq!(app.get("/me").await.location(), Some("/login"), "its session ended");
    assert_eq!(
        app.login_with(&crate::helpers::browser(), "marie", PASSWORD, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(guichet(&app, &["member", "enable", "marie"], None).status.success());
    assert_eq!(app.login_with(&crate::helpers::browser(), "marie", PASSWORD, &[]).await.status, StatusCode::SEE_OTHER);
    app.add_account("boss", guichet_core::account::Role::Admin).await;
    let last = guichet(&app, &["member", "disable", "boss"], None);
    assert_eq!(stderr(&last).trim(), "error: this is the last active administrator: it stays");
}

/// What a French Excel saves from a WordPress or Joomla export: `;`, Windows-1252, CRLF,
/// password hashes from the old site.
async fn members_from_the_old_site_log_in_with_their_old_passwords(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.csv");
    let mut csv: Vec<u8> = Vec::new();
    csv.extend_from_slice(b"identifier;email;name;groups;password_hash\r\n");
    csv.extend_from_slice(
        b"helene;helene@chu.example.fr;H\xe9l\xe8ne B\xe9rard;adherents;$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0\r\n",
    );
    csv.extend_from_slice(b"wp68;wp68@chu.example.fr;Ana;adherents|bureau;$wp$2y$10$y6/UfA/WhvVLZK6RxBSJE./L6YpJN8ChGg15a0Pqry/bTGsDuMR1q\r\n");
    csv.extend_from_slice(
        b"joomla;joomla@chu.example.fr;Jo;;b18c99813cd96df3a706652f47177490:377c4aaf92c5ed57711306909e6065ca\r\n",
    );
    csv.extend_from_slice(b"django;django@chu.example.fr;Dj;;pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=\r\n");
    csv.extend_from_slice(b"md5;md5@chu.example.fr;Old;;5f4dcc3b5aa765d61d8327deb882cf99\r\n");
    std::fs::write(&file, &csv).unwrap();
    let path = file.display().to_string();
    let output = guichet(&app, &["member", "import", &path, "--create-groups"], None);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(report.contains("created 4, updated 0, unchanged 0, rejected 1"), "{report}");
    assert!(report.contains("line 6: password_hash: unknown password hash format"), "{report}");
    assert_eq!(app.account("helene").await.display_name.as_str(), "Hélène Bérard", "Windows-1252 read");
    for (identifier, password) in
        [("helene", "test12345"), ("wp68", "Na101918!"), ("joomla", "password"), ("django", "lètmein")]
    {
        let before = app.account(identifier).await.password_hash.map(|h| h.as_phc().to_owned()).unwrap_or_default();
        assert!(!before.starts_with("$argon2"), "{identifier} keeps its old hash until it logs in");
        assert_eq!(
            app.login_with(&crate::helpers::browser(), identifier, "pas le bon", &[]).await.status,
            StatusCode::UNAUTHORIZED
        );
        let login = app.login_with(&crate::helpers::browser(), identifier, password, &[]).await;
        assert_eq!((login.status, login.location()), (StatusCode::SEE_OTHER, Some("/me")), "{identifier}");
        let after = app.account(identifier).await.password_hash.map(|h| h.as_phc().to_owned()).unwrap_or_default();
        assert!(after.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{identifier}: rehashed, nothing old left");
        assert_eq!(app.login_with(&crate::helpers::browser(), identifier, password, &[]).await.location(), Some("/me"));
    }
    assert!(stdout(&guichet(&app, &["member", "show", "wp68"], None)).contains("groups:          adherents, bureau"));

    // Re-imported as a sync: a name and a group changed, the rest as it was.
    let mut again: Vec<u8> = Vec::new();
    again.extend_from_slice(b"identifier;email;name;groups\r\n");
    again.extend_from_slice(b"helene;helene@chu.example.fr;H\xe9l\xe8ne B\xe9rard-Roux;adherents|bureau\r\n");
    again.extend_from_slice(b"wp68;wp68@chu.example.fr;Ana;adherents|bureau\r\n");
    again.extend_from_slice(b"nouveau;nouveau@chu.example.fr;Neuf;adherents\r\n");
    std::fs::write(&file, &again).unwrap();
    let output = guichet(&app, &["member", "import", &path], None);
    assert!(stdout(&output).contains("rejected 2"), "without --update: {}", stdout(&output));
    let output = guichet(&app, &["member", "import", &path, "--update"], None);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(stdout(&output).contains("created 0, updated 1, unchanged 2, rejected 0"), "{}", stdout(&output));
    assert_eq!(app.account("helene").await.display_name.as_str(), "Hélène Bérard-Roux");
    assert!(app.account("helene").await.password_hash.is_some_and(|h| h.as_phc().starts_with("$argon2id")), "kept");
}

/// `guichet retention` says what is kept and what goes next; `member erase` erases now.
async fn the_operator_sees_what_is_kept_and_erases_an_account(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.add_member("marie").await;
    app.add_member("jamais").await;
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::SEE_OTHER);
    let kept = guichet(&app, &["retention"], None);
    assert!(kept.status.success(), "{}", stderr(&kept));
    let said = stdout(&kept);
    for expected in [
        "GUICHET_RETENTION_AUDIT",
        "365d",
        "GUICHET_RETENTION_FAILED_ATTEMPTS",
        "1d",
        "GUICHET_RETENTION_UNUSED_ACCOUNTS",
        "GUICHET_ERASURE_DELAY",
        "7d",
    ] {
        assert!(said.contains(expected), "{expected} in:\n{said}");
    }
    let erased = guichet(&app, &["member", "erase", "marie"], None);
    assert!(erased.status.success(), "{}", stderr(&erased));
    assert!(stdout(&erased).starts_with("marie: erased"), "{}", stdout(&erased));
    assert_eq!(app.get("/me").await.location(), Some("/login"), "her session ended");
    let gone = guichet(&app, &["member", "show", "marie"], None);
    assert!(!gone.status.success());
    let again = guichet(&app, &["member", "erase", "marie"], None);
    assert!(!again.status.success() && stderr(&again).lines().count() == 1, "{}", stderr(&again));
    app.add_account("boss", guichet_core::account::Role::Admin).await;
    let last = guichet(&app, &["member", "erase", "boss"], None);
    assert_eq!(stderr(&last).trim(), "error: boss: this is the last active administrator: it stays");
}

on_both_backends!(
    an_operator_records_a_members_rpps_number,
    the_operator_sees_what_is_kept_and_erases_an_account,
    members_from_the_old_site_log_in_with_their_old_passwords,
    an_operator_adds_a_member_who_can_then_log_in,
    duplicates_are_refused_in_one_line,
    groups_are_made_joined_listed_and_removed,
    an_import_puts_members_in_their_groups,
    given_and_family_names_come_from_the_command_and_the_file,
    the_operator_disables_and_enables_an_account,
);

#[tokio::test]
async fn applications_are_registered_listed_and_removed() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let added = guichet(
        &app,
        &["client", "add", "Nextcloud", "--redirect-uri", "https://cloud.example.org/cb", "--group", "bureau"],
        None,
    );
    assert_eq!(stderr(&added).trim(), "error: no group is named \"bureau\" (guichet group list shows them)");
    assert!(guichet(&app, &["group", "add", "bureau"], None).status.success());
    let bad = guichet(&app, &["client", "add", "X", "--redirect-uri", "http://cloud.example.org/cb"], None);
    assert!(!bad.status.success() && stderr(&bad).contains("cannot be a redirect URI"), "{}", stderr(&bad));
    let added = guichet(
        &app,
        &["client", "add", "Nextcloud", "--redirect-uri", "https://cloud.example.org/cb", "--group", "bureau"],
        None,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let printed = stdout(&added);
    let field = |name: &str| {
        printed.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap_or_default()
    };
    let (id, secret) = (field("client_id:"), field("client_secret:"));
    assert!(id.starts_with("nextcloud-") && secret.len() == 43, "{printed}");
    assert_eq!(field("issuer:"), app.address);
    let public =
        guichet(&app, &["client", "add", "Appli", "--redirect-uri", "http://127.0.0.1:9/cb", "--public"], None);
    assert!(stdout(&public).contains("public client: no secret") && !stdout(&public).contains("client_secret"));
    let strict = ["client", "add", "Compta", "--redirect-uri", "https://compta.example.org/cb", "--second-factor"];
    assert!(guichet(&app, &strict, None).status.success());
    let list = stdout(&guichet(&app, &["client", "list"], None));
    assert!(list.contains(&id) && list.contains("groups bureau") && !list.contains(&secret), "{list}");
    assert!(list.lines().any(|l| l.contains("confidential,second-factor") && l.contains("Compta")), "{list}");
    assert!(guichet(&app, &["client", "remove", &id], None).status.success());
    let again = guichet(&app, &["client", "remove", &id], None);
    assert_eq!(stderr(&again).trim(), format!("error: no client has the id {id:?}"));
}

#[tokio::test]
async fn weak_passwords_are_refused_with_the_reason() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    for (password, reason) in [
        ("court", "at least 12 characters"),
        ("motdepasse123", "most common"),
        ("xx-marie.durand-xx", "the identifier"),
    ] {
        let output = guichet(
            &app,
            &["member", "add", "marie.durand", "--email", "m@example.org", "--password-stdin"],
            Some(password),
        );
        assert!(!output.status.success());
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.contains(reason), "{message}");
    }
}

#[tokio::test]
async fn bad_identifiers_and_emails_are_refused() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let output = guichet(&app, &["member", "add", "marie durand", "--email", "m@example.org"], None);
    assert!(stderr(&output).starts_with("error: identifier refused"), "{}", stderr(&output));
    let output = guichet(&app, &["member", "add", "marie", "--email", "pas-une-adresse"], None);
    assert!(stderr(&output).starts_with("error: email refused"), "{}", stderr(&output));
}

#[tokio::test]
async fn show_and_list_report_the_lock_and_unknown_identifiers_fail() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    app.add_member("marie").await;
    app.add_member("paul").await;
    for _ in 0..5 {
        app.login("marie", "wrong password").await;
    }
    let list = guichet(&app, &["member", "list", "--locked"], None);
    let lines: Vec<String> = stdout(&list).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("marie ") && lines[0].contains("locked until"), "{lines:?}");
    assert_eq!(stdout(&guichet(&app, &["member", "list"], None)).lines().count(), 2);

    let show = stdout(&guichet(&app, &["member", "show", "marie"], None));
    assert!(show.contains("role:            member"), "{show}");
    assert!(show.contains("recent failures: 5"), "{show}");
    assert!(show.contains("must change:     no"), "{show}");
    assert!(show.contains("account_locked") && show.contains("from 127.0.0.1"), "{show}");

    let unknown = guichet(&app, &["member", "show", "nobody"], None);
    assert!(!unknown.status.success());
    assert_eq!(stderr(&unknown).trim(), "error: no account has the identifier \"nobody\"");
    assert!(!guichet(&app, &["member", "unlock", "nobody"], None).status.success());
}

#[tokio::test]
async fn a_bad_setting_stops_the_command_and_names_the_variable() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let output = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["migrate"])
        .env("GUICHET_DATABASE_URL", app.database_url())
        .env("GUICHET_SESSION_IDLE", "demain")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output).trim(),
        "error: GUICHET_SESSION_IDLE: expected a duration like 90s, 15m, 1h or 3d, got \"demain\""
    );
}

#[tokio::test]
async fn an_unreachable_database_is_one_line_without_its_password() {
    let output = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["member", "list"])
        .env("GUICHET_DATABASE_URL", "postgres://guichet:hunter2@127.0.0.1:1/guichet")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("could not connect") && !message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn serve_on_an_empty_database_creates_an_administrator_and_prints_a_one_time_link() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/g.db", dir.path().display());
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_guichet"))
            .arg("serve")
            .env("GUICHET_DATABASE_URL", &database)
            .env("GUICHET_LISTEN", "127.0.0.1:0")
            .env("GUICHET_PUBLIC_URL", "https://membres.example.org")
            .env("GUICHET_MAIL_TRANSPORT", format!("file:{}/outbox", dir.path().display()))
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("guichet is serving") {
                break;
            }
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let first = start();
    assert!(first.contains("created the administrator account `admin`"), "{first}");
    let link = |out: &str| {
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with("https://membres.example.org/reset-password?code="))
            .map(str::to_owned)
    };
    let first_link = link(&first).unwrap_or_else(|| panic!("no link in {first}"));
    // Until the administrator sets a password, each start prints a fresh link.
    let second = start();
    assert!(!second.contains("created the administrator"));
    assert_ne!(link(&second), Some(first_link.clone()));
    // The earlier link no longer works: only the newest one printed does.
    let app = crate::helpers::spawn_app_on_database(&database).await;
    let code = first_link.rsplit('=').next().unwrap_or_default().to_owned();
    let form = [("code", code.as_str()), ("new_password", PASSWORD), ("new_password_confirm", PASSWORD)];
    let page = app.submit(&app.client, "/reset-password", "/reset-password", &form).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_invited_member_sets_their_own_password_from_the_mail() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let output = guichet(
        &app,
        &["member", "add", "paul", "--email", "paul@chu.example.fr", "--name", "Paul Roux", "--invite"],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stdout(&output);
    assert!(said.contains("invitation sent to paul@chu.example.fr: 250"), "{said}");
    let mail = app.mail_to("paul@chu.example.fr").pop().unwrap_or_else(|| panic!("no invitation"));
    assert!(mail.text.lines().any(|l| l.trim() == "paul"), "the identifier is in the invitation");
    assert!(mail.link().starts_with(&format!("{}/reset-password?code=", app.address)));
    assert_eq!(app.login("paul", PASSWORD).await.status, StatusCode::UNAUTHORIZED, "no password yet");
    let form =
        [("code", mail.code()), ("new_password", PASSWORD.to_owned()), ("new_password_confirm", PASSWORD.to_owned())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = app.submit(&app.client, "/reset-password", "/reset-password", &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(app.login("paul", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn mail_test_prints_what_the_server_answered() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let output = guichet(&app, &["mail", "test", "it@chu.example.fr"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).lines().last().is_some_and(|l| l.starts_with("250")), "{}", stdout(&output));
    assert_eq!(app.mail.wait_for(1).await[0].to, ["it@chu.example.fr"]);

    app.mail.set_mode(guichet_testkit::Mode::PermanentFailure);
    let refused = guichet(&app, &["mail", "test", "it@chu.example.fr"], None);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("550"), "{message}");
}

/// A backup taken while members log in is a database guichet starts on as it is, and
/// they log in on it.
#[tokio::test]
async fn a_backup_taken_while_serving_starts_and_logs_members_in() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    for n in 0..20 {
        app.add_member(&format!("membre{n}")).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copie.db");
    let copy_arg = copy.display().to_string();
    // Logins go on while the copy is written.
    let clients: Vec<(reqwest::Client, String)> =
        (0..20).map(|n| (crate::helpers::browser(), format!("membre{n}"))).collect();
    let logins = futures_util::future::join_all(
        clients.iter().map(|(client, identifier)| app.login_with(client, identifier, PASSWORD, &[])),
    );
    let (logins, backup) = tokio::join!(
        logins,
        tokio::task::spawn_blocking({
            let database = app.database_url().to_owned();
            let copy_arg = copy_arg.clone();
            move || {
                Command::new(env!("CARGO_BIN_EXE_guichet"))
                    .args(["backup", &copy_arg])
                    .env("GUICHET_DATABASE_URL", database)
                    .env_remove("GUICHET_CONFIG")
                    .output()
                    .unwrap_or_else(|e| panic!("guichet: {e}"))
            }
        })
    );
    let backup = backup.unwrap();
    assert!(backup.status.success(), "{}", stderr(&backup));
    assert!(logins.iter().all(|l| l.status == StatusCode::SEE_OTHER));
    let again = guichet(&app, &["backup", &copy_arg], None);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("never overwrites"), "{}", stderr(&again));

    // A fresh guichet on the copy.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve_on(&format!("sqlite://{copy_arg}"), port, dir.path(), &[]);
    let client = crate::helpers::browser();
    let healthy = healthy(&client, &base).await;
    let login = async {
        let page = client.get(format!("{base}/login")).send().await.ok()?.text().await.ok()?;
        let token = crate::helpers::field_value(&page, "csrf_token")?;
        let form = [("csrf_token", token.as_str()), ("identifier", "membre7"), ("password", PASSWORD)];
        let answer = client.post(format!("{base}/login")).form(&form).send().await.ok()?;
        Some(answer.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned))
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    assert!(healthy, "guichet starts on the copy");
    assert_eq!(login.flatten().as_deref(), Some("/me"), "a member logs in on the copy");
}

#[tokio::test]
async fn postgres_backups_are_left_to_pg_dump_and_config_check_says_what_it_found() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let check = guichet(&app, &["config", "check"], None);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stdout(&check).contains("configuration OK") && stdout(&check).contains("database"), "{}", stdout(&check));
    let bad = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["config", "check"])
        .env("GUICHET_LOCKOUT_WINDOW", "soon")
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("GUICHET_LOCKOUT_WINDOW"), "{}", stderr(&bad));
    let postgres = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["backup", "/tmp/never-written.dump"])
        .env("GUICHET_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    assert!(!postgres.status.success());
    assert!(stderr(&postgres).contains("pg_dump"), "{}", stderr(&postgres));
}

/// A whole session of a real server, logged as JSON at the debug level: no password, code,
/// token or cookie value appears in any line.
#[tokio::test]
async fn the_logs_hold_no_password_code_token_or_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let database = format!("sqlite://{}/g.db", dir.path().display());
    let outbox = dir.path().join("outbox");
    let env = |command: &mut Command| {
        command
            .env("GUICHET_DATABASE_URL", &database)
            .env("GUICHET_LISTEN", format!("127.0.0.1:{port}"))
            .env("GUICHET_PUBLIC_URL", &base)
            .env("GUICHET_MAIL_TRANSPORT", format!("file:{}", outbox.display()))
            .env("GUICHET_LOG_FORMAT", "json")
            .env("GUICHET_LOG", "debug")
            .env_remove("GUICHET_CONFIG");
    };
    let mut add = Command::new(env!("CARGO_BIN_EXE_guichet"));
    env(&mut add);
    let added = add
        .args(["member", "add", "marie", "--email", "marie@chu.example.fr", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut pipe) = child.stdin.take() {
                let _ = pipe.write_all(PASSWORD.as_bytes());
            }
            child.wait_with_output()
        })
        .unwrap();
    let mut logs = String::from_utf8_lossy(&added.stderr).into_owned();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_guichet"));
    env(&mut serve);
    let mut server = serve.arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let client = crate::helpers::browser();
    assert!(healthy(&client, &base).await, "guichet starts");
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned(), "un mauvais mot de passe".to_owned()];
    let post = |path: &'static str, form: Vec<(&'static str, String)>| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let page = client.get(format!("{base}{path}")).send().await.ok()?.text().await.ok()?;
            let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
            let mut fields = vec![("csrf_token", token.clone())];
            fields.extend(form);
            let answer = client.post(format!("{base}{path}")).form(&fields).send().await.ok()?;
            let cookies: Vec<String> = answer
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('='))
                // Not the one-word notice ("password_changed"): the session, pass, device and form cookies.
                .filter(|(name, value)| !name.contains("notice") && value.len() > 8)
                .map(|(_, value)| value.to_owned())
                .collect();
            Some((token, cookies))
        }
    };
    let attempts = [
        ("/login", vec![("identifier", "marie".to_owned()), ("password", "un mauvais mot de passe".to_owned())]),
        ("/login", vec![("identifier", "marie".to_owned()), ("password", PASSWORD.to_owned())]),
        ("/forgot-password", vec![("email", "marie@chu.example.fr".to_owned())]),
    ];
    for (path, form) in attempts {
        if let Some((token, cookies)) = post(path, form).await {
            secrets.push(token);
            secrets.extend(cookies);
        }
    }
    // The code from the mail, used to choose a new password.
    let mut code = String::new();
    for _ in 0..50 {
        let mail = std::fs::read_dir(&outbox).into_iter().flatten().flatten().find_map(|entry| {
            let text = std::fs::read_to_string(entry.path()).ok()?;
            let grouped = |l: &&str| l.len() == 29 && l.split('-').count() == 6 && l.split('-').all(|g| g.len() == 4);
            text.lines().map(str::trim).find(grouped).map(str::to_owned)
        });
        if let Some(found) = mail {
            code = found;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(code.len(), 29, "the reset code was mailed");
    secrets.push(code.clone());
    secrets.push(code.replace('-', ""));
    let new_password = "une toute nouvelle phrase de passe";
    secrets.push(new_password.to_owned());
    let reset = vec![
        ("code", code),
        ("new_password", new_password.to_owned()),
        ("new_password_confirm", new_password.to_owned()),
    ];
    if let Some((token, cookies)) = post("/reset-password", reset).await {
        secrets.push(token);
        secrets.extend(cookies);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = server.kill();
    let output = server.wait_with_output().unwrap();
    logs.push_str(&String::from_utf8_lossy(&output.stderr));
    assert!(logs.lines().count() > 20, "a whole run was logged:\n{logs}");
    assert!(logs.lines().all(|l| l.starts_with('{')), "one JSON object per line");
    assert!(logs.contains("\"target\":\"guichet::access\""), "an access log line per request");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret appears in the logs: {secret:?}");
    }
}

/// The systemd unit in `deploy/` passes `systemd-analyze verify` with the real binary in
/// place (skipped, saying so, where systemd's tools are missing).
#[test]
fn the_systemd_unit_verifies() {
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        eprintln!("SKIPPED (systemd unit): systemd-analyze is not installed");
        return;
    }
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/guichet.service"))
        .unwrap_or_else(|e| panic!("deploy/guichet.service: {e}"));
    assert!(
        unit.contains("DynamicUser=yes") && unit.contains("LoadCredential=") && unit.contains("ProtectSystem=strict")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.service");
    let unit = unit.replace("/usr/local/bin/guichet", env!("CARGO_BIN_EXE_guichet"));
    std::fs::write(&path, unit).unwrap();
    let output = Command::new(analyze).arg("verify").arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}

/// The unit boots for real: Debian's systemd, in a container made by `systemd-nspawn`
/// (read-only, with a throw-away overlay), starts guichet under every hardening line of
/// `deploy/guichet.service` — as a made-up user, with no new privileges, a system-call
/// filter, its state directory and its credential, read through `_FILE`. A member's
/// failed login is answered (Argon2id runs under the filter); at power-off systemd stops
/// guichet with SIGTERM, and it stops cleanly. The operator's local settings come in
/// `/etc/guichet/guichet.env`, as the unit's comments say, and the operator's commands
/// run beside the service through `deploy/guichet-admin`, as the deployment guide says. `GUICHET_TEST_SYSTEMD_ROOT` names a Debian tree
/// with systemd (`.ci/run` makes it with debootstrap).
#[tokio::test]
async fn the_systemd_unit_starts_guichet_hardened_and_stops_it_cleanly() {
    let Some(root) = std::env::var_os("GUICHET_TEST_SYSTEMD_ROOT") else {
        assert!(std::env::var_os("CI").is_none(), "GUICHET_TEST_SYSTEMD_ROOT must be set under CI");
        eprintln!("SKIPPED (systemd boot): set GUICHET_TEST_SYSTEMD_ROOT to a Debian tree with systemd");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (etc, credentials, units) = (dir.path().join("etc"), dir.path().join("credentials"), dir.path().join("units"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let local = format!("GUICHET_LISTEN=127.0.0.1:{port}\nGUICHET_PUBLIC_URL={base}\n");
    // The operator's commands, through deploy/guichet-admin, as docs/deploiement.md § 7
    // writes them, once the service answers: run at boot by a unit of the test's, output on
    // the console.
    let admin = format!(
        "[Unit]\nAfter=guichet.service\nRequires=guichet.service\n[Service]\nType=oneshot\n\
         ExecStartPre=/bin/bash -c 'for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.1; done; exit 1'\n\
         ExecStart=/usr/local/sbin/guichet-admin member add a.martin --email a.martin@reseau-sante.fr --role assistance --invite\n\
         ExecStart=/usr/local/sbin/guichet-admin group add bureau --description \"Le bureau de l'association\"\n\
         ExecStart=/usr/local/sbin/guichet-admin member import /srv/guichet/anciens-membres.csv --invite\n\
         ExecStart=/usr/local/sbin/guichet-admin member list\n\
         StandardOutput=journal+console\nStandardError=journal+console\n"
    );
    for (folder, file, text) in [
        (&etc, "guichet.env", local.as_str()),
        (&credentials, "mail_transport", "file:/var/lib/guichet/outbox"),
        (&units, "guichet-admin-check.service", admin.as_str()),
        (&etc, "import.csv", "identifier,email,name\nanne,anne@example.org,Anne Martin\n"),
    ] {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join(file), text).unwrap();
    }
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/guichet.service");
    let admin_script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/guichet-admin");
    let console_path = dir.path().join("console.log");
    let console = std::fs::File::create(&console_path).unwrap();
    let binds = [
        (env!("CARGO_BIN_EXE_guichet").to_owned(), "/usr/local/bin/guichet"),
        (unit.to_owned(), "/etc/systemd/system/guichet.service"),
        (etc.join("guichet.env").display().to_string(), "/etc/guichet/guichet.env"),
        (credentials.display().to_string(), "/etc/guichet/credentials"),
        (admin_script.to_owned(), "/usr/local/sbin/guichet-admin"),
        (etc.join("import.csv").display().to_string(), "/srv/guichet/anciens-membres.csv"),
        (
            units.join("guichet-admin-check.service").display().to_string(),
            "/etc/systemd/system/guichet-admin-check.service",
        ),
    ];
    let mut machine = Machine(
        Command::new("systemd-nspawn")
            .args(["--quiet", "--boot", "--register=no", "--keep-unit", "--volatile=overlay", "--console=read-only"])
            .args(binds.iter().map(|(from, to)| format!("--bind-ro={from}:{to}")))
            .arg("--directory")
            .arg(&root)
            // Enabled as `systemctl enable` would: a wants of the default target. systemd's
            // own messages on the console, to read how the service ended.
            .args(["systemd.wants=guichet.service", "systemd.wants=guichet-admin-check.service"])
            .arg("systemd.log_target=console")
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .unwrap_or_else(|e| panic!("systemd-nspawn: {e}")),
    );

    let client = crate::helpers::browser();
    let mut up = false;
    for _ in 0..6 {
        up = healthy(&client, &base).await;
        if up {
            break;
        }
    }
    // The operator's commands ran as the service's user, beside it.
    let mut commands_ran = false;
    for _ in 0..300 {
        let console = std::fs::read_to_string(&console_path).unwrap_or_default();
        let listed = console
            .lines()
            .any(|l| l.contains("a.martin ") && l.contains("assistance") && l.contains("no password yet"));
        let imported =
            console.lines().any(|l| l.contains("anne ") && l.contains("member") && l.contains("no password yet"));
        let made = console.contains("created a.martin (assistance, a.martin@reseau-sante.fr)")
            && console.contains("created group bureau");
        commands_ran = made && listed && imported;
        if commands_ran || console.contains("guichet-admin-check.service: Failed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let process = guichet_in_machine();
    let status =
        process.and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok()).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
    };
    let failed_login = async {
        let page = client.get(format!("{base}/login")).send().await.ok()?.text().await.ok()?;
        let token = crate::helpers::field_value(&page, "csrf_token")?;
        let form = [("csrf_token", token.as_str()), ("identifier", "admin"), ("password", "pas le bon")];
        Some(client.post(format!("{base}/login")).form(&form).send().await.ok()?.status())
    }
    .await;
    let still_there = process.is_some() && guichet_in_machine() == process;

    // Power-off: nspawn asks the machine's systemd, which stops guichet with SIGTERM.
    let asked = std::time::Instant::now();
    machine.signal("-TERM");
    let mut exited = None;
    while exited.is_none() && asked.elapsed() < std::time::Duration::from_secs(60) {
        exited = machine.0.try_wait().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let powered_off_in = asked.elapsed();
    // Without the terminal's colours.
    let console = std::fs::read_to_string(&console_path).unwrap_or_default();
    let console = console.split('\u{1b}').enumerate().fold(String::new(), |mut plain, (n, part)| {
        let colour = |p: &'_ str| {
            let p = p.strip_prefix('[')?.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
            p.strip_prefix('m').map(str::to_owned)
        };
        plain.push_str(&if n == 0 { part.to_owned() } else { colour(part).unwrap_or_else(|| part.to_owned()) });
        plain
    });
    assert!(up, "guichet answers /healthz under systemd:\n{console}");
    assert!(commands_ran, "guichet-admin runs the operator's commands:\n{console}");
    assert!(field("Uid:").is_some_and(|uid| uid != "0"), "a made-up user, not root: {status}");
    assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"), "{status}");
    assert_eq!(field("Seccomp:").as_deref(), Some("2"), "a system-call filter: {status}");
    assert_eq!(failed_login, Some(StatusCode::UNAUTHORIZED), "a login is checked under the filter");
    assert!(still_there, "guichet is still the same process after the login:\n{console}");
    assert!(exited.is_some(), "the machine powers off:\n{console}");
    // Ended by its SIGTERM, well before TimeoutStopSec (no SIGKILL), with exit status 0.
    assert!(console.contains("guichet.service: Deactivated successfully."), "{console}");
    assert!(powered_off_in < std::time::Duration::from_secs(20), "{powered_off_in:?}:\n{console}");
    assert!(!console.contains("FAILED") && !console.contains("guichet.service: Failed"), "{console}");
}

/// A booted `systemd-nspawn`, powered off however the test ends.
struct Machine(std::process::Child);

impl Machine {
    fn signal(&self, signal: &str) {
        let _ = Command::new("kill").args([signal, &self.0.id().to_string()]).status();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        // A second SIGTERM makes nspawn end the machine at once; SIGKILL on nspawn itself
        // could leave the machine running.
        self.signal("-TERM");
        std::thread::sleep(std::time::Duration::from_millis(500));
        self.signal("-TERM");
        for _ in 0..100 {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The process started from `/usr/local/bin/guichet serve` (only the systemd machine
/// runs guichet from there).
fn guichet_in_machine() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        (cmdline == b"/usr/local/bin/guichet\0serve\0").then_some(pid)
    })
}

/// Prometheus metrics on their own listener, never on the public one.
#[tokio::test]
async fn metrics_are_served_apart_and_count_logins_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let database = format!("sqlite://{}/g.db", dir.path().display());
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut server = serve_on(&database, port, dir.path(), &[("GUICHET_METRICS_LISTEN", &metrics)]);
    let client = crate::helpers::browser();
    assert!(healthy(&client, &base).await, "guichet starts");
    let page = client.get(format!("{base}/login")).send().await.ok();
    let page = match page {
        Some(page) => page.text().await.unwrap_or_default(),
        None => String::new(),
    };
    let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
    let form = [("csrf_token", token.as_str()), ("identifier", "personne"), ("password", "pas le bon")];
    let failed = client.post(format!("{base}/login")).form(&form).send().await.map(|r| r.status()).ok();
    let public = client.get(format!("{base}/metrics")).send().await.map(|r| r.status()).ok();
    // Made-up methods are one label, not one series each.
    for n in 0..20 {
        let method = reqwest::Method::from_bytes(format!("INVENTE{n}").as_bytes()).unwrap_or(reqwest::Method::GET);
        let _ = client.request(method, format!("{base}/login")).send().await;
    }
    let scraped = client.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.ok();
    let text = match scraped {
        Some(answer) => answer.text().await.unwrap_or_default(),
        None => String::new(),
    };
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(failed, Some(StatusCode::UNAUTHORIZED));
    assert_eq!(public, Some(StatusCode::NOT_FOUND), "never on the public listener");
    for expected in [
        r#"guichet_logins_total{outcome="failure"} 1"#,
        r#"guichet_http_requests_total{route="/login",method="GET",status="200"}"#,
        "guichet_http_request_duration_seconds_bucket",
        "guichet_hash_wait_seconds",
        "guichet_outbox_pending",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    assert!(!text.contains("INVENTE"), "no series per made-up method:\n{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
    // Fit for alerting: described, present from the start, with the process's figures.
    for expected in [
        "# HELP guichet_logins_total",
        r#"guichet_logins_total{outcome="locked"} 0"#,
        r#"guichet_mail_total{result="failed"} 0"#,
        "guichet_lockouts_total 0",
        r#"guichet_build_info{version=""#,
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    let Ok(mut promtool) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var_os("CI").is_none(), "promtool (Debian's prometheus) must be installed under CI");
        say_skipped!("SKIPPED (promtool): install Debian's prometheus to check the metrics with it");
        return;
    };
    if let Some(mut input) = promtool.stdin.take() {
        let _ = input.write_all(text.as_bytes());
    }
    let checked = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}

/// A mail relay that asks for a password over a plain connection (as a relay on the same
/// machine may): just enough SMTP for lettre, keeping each message it receives.
async fn relay_with_password() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = std::sync::Arc::clone(&kept);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 relai.test ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.split(' ').next().unwrap_or_default().to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-relai.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
                        "AUTH" if line.split(' ').count() > 2 => b"235 2.7.0 Authentication successful\r\n",
                        "AUTH" if line.to_ascii_uppercase().contains("LOGIN") => {
                            let _ = write.write_all(b"334 VXNlcm5hbWU6\r\n").await;
                            let _ = lines.next_line().await;
                            let _ = write.write_all(b"334 UGFzc3dvcmQ6\r\n").await;
                            let _ = lines.next_line().await;
                            b"235 2.7.0 Authentication successful\r\n"
                        }
                        "AUTH" => {
                            let _ = write.write_all(b"334 \r\n").await;
                            let _ = lines.next_line().await;
                            b"235 2.7.0 Authentication successful\r\n"
                        }
                        "DATA" => {
                            let _ = write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await;
                            let mut message = String::new();
                            while let Ok(Some(line)) = lines.next_line().await {
                                if line == "." {
                                    break;
                                }
                                message.push_str(&line);
                                message.push('\n');
                            }
                            kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(message);
                            b"250 2.0.0 Ok: queued\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
                            return;
                        }
                        _ => b"250 2.0.0 Ok\r\n",
                    };
                    let _ = write.write_all(answer).await;
                }
            });
        }
    });
    (port, received)
}

/// `GUICHET_LOG=trace`, SMTP with a password: neither the password (plain or in base64,
/// as `AUTH PLAIN` and `AUTH LOGIN` send it), nor the message with its code, appears in
/// any line, whatever the libraries would say at that level.
#[tokio::test]
async fn a_trace_level_run_with_smtp_authentication_logs_no_secret() {
    let (relay, received) = relay_with_password().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let database = format!("sqlite://{}/g.db", dir.path().display());
    let smtp_password = "motdepasse-du-relai-9Zq";
    let transport = format!("smtp://relai:{smtp_password}@127.0.0.1:{relay}?tls=none");
    let added = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["member", "add", "marie", "--email", "marie@chu.example.fr"])
        .env("GUICHET_DATABASE_URL", &database)
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .arg("serve")
        .env("GUICHET_DATABASE_URL", &database)
        .env("GUICHET_LISTEN", format!("127.0.0.1:{port}"))
        .env("GUICHET_PUBLIC_URL", &base)
        .env("GUICHET_MAIL_TRANSPORT", &transport)
        // Even when asked for by name, the SMTP library's own debug output stays out.
        .env("GUICHET_LOG", "trace,lettre::transport::smtp=trace")
        .env_remove("GUICHET_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = crate::helpers::browser();
    assert!(healthy(&client, &base).await, "guichet starts");
    let page = client.get(format!("{base}/forgot-password")).send().await.ok();
    let page = match page {
        Some(page) => page.text().await.unwrap_or_default(),
        None => String::new(),
    };
    let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
    let form = [("csrf_token", token.as_str()), ("email", "marie@chu.example.fr")];
    let asked = client.post(format!("{base}/forgot-password")).form(&form).send().await.map(|r| r.status()).ok();
    assert_eq!(asked, Some(StatusCode::OK));
    let mut message = String::new();
    for _ in 0..100 {
        if let Some(first) = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).first() {
            message = first.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let grouped = |l: &&str| l.len() == 29 && l.split('-').count() == 6 && l.split('-').all(|g| g.len() == 4);
    let code = message.lines().map(str::trim).find(grouped).unwrap_or_default().to_owned();
    assert_eq!(code.len(), 29, "the relay received the reset mail: {message}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let _ = server.kill();
    let output = server.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.lines().count() > 50, "a trace-level run logs plenty:\n{logs}");
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for secret in [
        smtp_password.to_owned(),
        b64(smtp_password),
        b64(&format!("\0relai\0{smtp_password}")),
        code.clone(),
        code.replace('-', ""),
    ] {
        assert!(!logs.contains(&secret), "a secret appears in the logs: {secret:?}");
    }
    assert!(!logs.contains("Subject:"), "no message in the logs");
}

/// `guichet mail retry` after an outage: the waiting message is due now, not when its
/// own retry delay runs out.
#[tokio::test]
async fn mail_retry_makes_the_waiting_messages_due_now() {
    let down = guichet_testkit::SmtpSink::unused_address();
    let app = crate::helpers::spawn_app_with_mail_down(Backend::Sqlite, down).await;
    app.add_member("marie").await;
    let asked =
        app.submit(&app.client, "/forgot-password", "/forgot-password", &[("email", "marie@chu.example.fr")]).await;
    assert_eq!(asked.status, StatusCode::OK);
    app.deliver_mail().await;
    let sink = guichet_testkit::SmtpSink::start_on(down);
    let retried = guichet(&app, &["mail", "retry"], None);
    let said = String::from_utf8_lossy(&retried.stdout);
    assert!(retried.status.success() && said.contains("1 message(s) waiting for a retry are due now"), "{retried:?}");
    // Well before the 30 s of the first retry delay.
    app.advance(guichet_core::SignedDuration::from_secs(10));
    app.deliver_mail().await;
    assert_eq!(sink.wait_for(1).await[0].to, ["marie@chu.example.fr"]);
}

/// `sslrootcert` with libpq's meaning: only that CA, even when the system trusts the
/// server's own CA (here the system's store is the CI's CA, through `SSL_CERT_FILE`).
#[test]
fn sslrootcert_trusts_that_ca_alone() {
    let (Ok(url), Ok(root)) =
        (std::env::var("GUICHET_TEST_POSTGRES_URL"), std::env::var("GUICHET_TEST_POSTGRES_TLS_ROOT"))
    else {
        assert!(std::env::var_os("CI").is_none(), "the TLS variables must be set under CI");
        say_skipped!("SKIPPED (TLS to PostgreSQL): set GUICHET_TEST_POSTGRES_URL and GUICHET_TEST_POSTGRES_TLS_ROOT");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=another CA", "-keyout"])
        .arg(dir.path().join("other-ca.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(made.status.success(), "{made:?}");
    let migrate = |query: &str| {
        let separator = if url.contains('?') { '&' } else { '?' };
        Command::new(env!("CARGO_BIN_EXE_guichet"))
            .arg("migrate")
            .env("GUICHET_DATABASE_URL", format!("{url}{separator}{query}"))
            .env("SSL_CERT_FILE", &root)
            .env_remove("SSL_CERT_DIR")
            .env_remove("GUICHET_CONFIG")
            .output()
            .unwrap()
    };
    let system = migrate("sslmode=verify-full");
    assert!(system.status.success(), "verify-full against the system's store: {}", stderr(&system));
    let right = migrate(&format!("sslmode=verify-full&sslrootcert={root}"));
    assert!(right.status.success(), "the right CA: {}", stderr(&right));
    for mode in ["verify-full", "verify-ca"] {
        let wrong = migrate(&format!("sslmode={mode}&sslrootcert={}", other.display()));
        assert!(!wrong.status.success(), "{mode}: a CA the system trusts is not the one given");
        assert!(stderr(&wrong).contains("sslrootcert"), "{mode}: says why: {}", stderr(&wrong));
    }
}

/// `config check` refuses what `serve` would, a misspelt variable is refused with the
/// setting it was meant to be, and an unreachable PostgreSQL is named at once.
#[test]
fn configuration_mistakes_are_refused_in_one_clear_line() {
    let check = |pairs: &[(&str, &str)], args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_guichet"))
            .args(args)
            .envs(pairs.iter().copied())
            .env("GUICHET_DATABASE_URL", "sqlite::memory:")
            .env_remove("GUICHET_CONFIG")
            .output()
            .unwrap();
        (output.status.success(), stderr(&output), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let config = ["config", "check"];
    for (pairs, expected) in [
        (vec![("GUICHET_LOCKOUT_TRESHOLD", "3")], "did you mean GUICHET_LOCKOUT_THRESHOLD?"),
        (vec![("GUICHET_MAIL_TRANSPORT", "smtp://relay:25?tls=maybe")], "tls=maybe"),
        (
            vec![
                ("GUICHET_DKIM_DOMAIN", "example.org"),
                ("GUICHET_DKIM_SELECTOR", "s"),
                ("GUICHET_DKIM_KEY_FILE", "/nope"),
            ],
            "GUICHET_DKIM_KEY_FILE",
        ),
        (vec![("GUICHET_RETENTION_FAILED_ATTEMPTS", "2h")], "GUICHET_RETENTION_FAILED_ATTEMPTS: at least a day"),
        (vec![("GUICHET_RETENTION_ADDRESSES", "2y")], "GUICHET_RETENTION_ADDRESSES: at most GUICHET_RETENTION_AUDIT"),
        (vec![("GUICHET_ERASURE_DELAY", "soon")], "GUICHET_ERASURE_DELAY"),
    ] {
        let (ok, said, _) = check(&pairs, &config);
        assert!(!ok && said.contains(expected) && said.lines().count() == 1, "{pairs:?}: {said}");
    }
    let bogus = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(config)
        .env("GUICHET_DATABASE_URL", "postgres://x@127.0.0.1:1/db?sslmode=bogus")
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    assert!(!bogus.status.success() && stderr(&bogus).contains("bogus"), "{}", stderr(&bogus));
    let (ok, _, said) = check(&[("GUICHET_LOCKOUT_THRESHOLD", "7")], &config);
    assert!(ok && said.contains("GUICHET_LOCKOUT_THRESHOLD          the environment"), "{said}");
    assert!(said.contains("GUICHET_SESSION_IDLE               default") && said.contains("code lifetimes"), "{said}");
    let started = std::time::Instant::now();
    let unreachable = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .arg("migrate")
        .env("GUICHET_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    assert!(
        !unreachable.status.success() && stderr(&unreachable).contains("Connection refused"),
        "{}",
        stderr(&unreachable)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "at once, not after a pool's timeout");
}

/// Small things an operator meets: a command piped into `head` ends quietly, and logs
/// written to a file or a journal carry no terminal colours.
#[test]
fn output_behaves_in_pipes_and_files() {
    let piped = Command::new("bash")
        .args(["-c", "set -o pipefail; \"$0\" config check | head -c 0", env!("CARGO_BIN_EXE_guichet")])
        .env("GUICHET_DATABASE_URL", "sqlite::memory:")
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    assert!(piped.status.success(), "no panic on a closed pipe: {}", stderr(&piped));
    assert!(!stderr(&piped).contains("panicked"), "{}", stderr(&piped));
    let logged = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .arg("migrate")
        .env("GUICHET_DATABASE_URL", "sqlite::memory:")
        .env("GUICHET_LOG", "debug")
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    assert!(logged.status.success() && !stderr(&logged).is_empty(), "{logged:?}");
    assert!(!stderr(&logged).contains('\u{1b}'), "no ANSI colours when not on a terminal");
}
