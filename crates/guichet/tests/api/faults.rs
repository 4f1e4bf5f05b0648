//! Faults an operator meets, on the real binary: a disk that fills up under SQLite.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;

use crate::cli::{free_port, healthy, serve_on};
use crate::helpers::PASSWORD;

/// A small filesystem of its own (`tmpfs`), unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(std::env::var_os("CI").is_none(), "the full-disk test mounts a tmpfs: run CI as root");
            say_skipped!("SKIPPED (full disk): mounting a tmpfs needs root");
            return None;
        }
        Some(Self { path, _dir: dir })
    }

    /// Fills what is left with a file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A `guichet serve` stopped however the test ends.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one member's requests got while the disk was full.
#[derive(Debug)]
struct Outcome {
    member: usize,
    forgot: StatusCode,
    login: StatusCode,
    session: Option<String>,
}

/// A login form's answer: the status and the session cookie it set, if any.
async fn log_in(base: &str, identifier: &str, address: &str) -> (StatusCode, Option<String>) {
    let client = crate::helpers::browser();
    let Ok(page) = client.get(format!("{base}/login")).header("x-forwarded-for", address).send().await else {
        return (StatusCode::BAD_GATEWAY, None);
    };
    let page = page.text().await.unwrap_or_default();
    let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
    let form = [("csrf_token", token.as_str()), ("identifier", identifier), ("password", PASSWORD)];
    let answer = client.post(format!("{base}/login")).header("x-forwarded-for", address).form(&form).send().await;
    let Ok(answer) = answer else { return (StatusCode::BAD_GATEWAY, None) };
    let session = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("guichet_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    (answer.status(), session)
}

/// "Forgot password" for `email`: the status.
async fn forgot(base: &str, email: &str, address: &str) -> StatusCode {
    let client = crate::helpers::browser();
    let Ok(page) = client.get(format!("{base}/forgot-password")).header("x-forwarded-for", address).send().await else {
        return StatusCode::BAD_GATEWAY;
    };
    let page = page.text().await.unwrap_or_default();
    let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
    let form = [("csrf_token", token.as_str()), ("email", email)];
    let answer =
        client.post(format!("{base}/forgot-password")).header("x-forwarded-for", address).form(&form).send().await;
    answer.map(|a| a.status()).unwrap_or(StatusCode::BAD_GATEWAY)
}

fn succeeded(status: StatusCode) -> bool {
    status == StatusCode::OK || status == StatusCode::SEE_OTHER
}

/// The `To:` lines of the `.eml` files in `outbox`.
fn recipients(outbox: &std::path::Path) -> String {
    let Ok(entries) = std::fs::read_dir(outbox) else { return String::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .filter_map(|mail| mail.lines().find(|l| l.starts_with("To:")).map(|l| format!("{l}\n")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_acknowledged_write_and_writes_come_back_by_themselves() {
    // 4 MB: once the filler is removed, what it held must take the writes that follow
    // (each login's transaction appends its table and index pages to the WAL).
    let Some(disk) = SmallDisk::mount("4m") else { return };
    let work = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/g.db", disk.path.display());
    const MEMBERS: usize = 120;
    // The members, with their password already hashed (one import, no hashing per row).
    let hash = guichet_core::hashing::Argon2Cost::RECOMMENDED.hash_blocking(PASSWORD).unwrap();
    let mut csv = String::from("identifier,email,name,role,groups,password_hash\n");
    for n in 0..MEMBERS {
        csv.push_str(&format!("m{n},m{n}@chu.example.fr,Membre {n},member,,\"{}\"\n", hash.as_phc()));
    }
    let file = work.path().join("members.csv");
    std::fs::write(&file, csv).unwrap();
    let imported = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["member", "import"])
        .arg(&file)
        .env("GUICHET_DATABASE_URL", &database)
        .env_remove("GUICHET_CONFIG")
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let settings = [("GUICHET_TRUSTED_PROXIES", "127.0.0.1")];
    let server = Serving(serve_on(&database, port, work.path(), &settings));
    let client = crate::helpers::browser();
    assert!(healthy(&client, &base).await, "guichet starts");

    // The disk fills up; members go on asking for codes and logging in, ten at a time.
    let filler = disk.fill();
    let mut outcomes = Vec::new();
    for batch in (0..MEMBERS - 20).collect::<Vec<_>>().chunks(10) {
        let requests = batch.iter().map(|&member| {
            let base = base.clone();
            async move {
                let address = format!("198.51.100.{member}");
                let forgot = forgot(&base, &format!("m{member}@chu.example.fr"), &address).await;
                let (login, session) = log_in(&base, &format!("m{member}"), &address).await;
                Outcome { member, forgot, login, session }
            }
        });
        outcomes.extend(futures_util::future::join_all(requests).await);
    }
    for outcome in &outcomes {
        for status in [outcome.forgot, outcome.login] {
            assert!(
                succeeded(status) || status == StatusCode::SERVICE_UNAVAILABLE,
                "a success or a calm 503, never {status}: {outcome:?}"
            );
        }
    }
    assert!(
        outcomes
            .iter()
            .any(|o| o.forgot == StatusCode::SERVICE_UNAVAILABLE || o.login == StatusCode::SERVICE_UNAVAILABLE),
        "the disk was full at some point: {outcomes:?}"
    );
    let ready = client.get(format!("{base}/readyz")).send().await.map(|r| r.status()).ok();

    // Space comes back: writes work again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut again = Vec::new();
    for member in MEMBERS - 20..MEMBERS {
        let address = format!("198.51.100.{member}");
        let (login, session) = log_in(&base, &format!("m{member}"), &address).await;
        let forgot = forgot(&base, &format!("m{member}@chu.example.fr"), &address).await;
        again.push(Outcome { member, forgot, login, session });
    }
    assert!(again.iter().all(|o| succeeded(o.forgot) && succeeded(o.login)), "{again:?}");

    // After a restart (a clean stop: the postman hands over what it claimed), everything
    // answered as a success is there.
    let mut server = server;
    let _ = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status();
    let _ = server.0.wait();
    let _server = Serving(serve_on(&database, port, work.path(), &settings));
    assert!(healthy(&client, &base).await, "guichet starts again");
    let mut missing = Vec::new();
    for outcome in outcomes.iter().chain(&again) {
        if let (true, Some(session)) = (succeeded(outcome.login), &outcome.session) {
            let me = client.get(format!("{base}/me")).header("cookie", session).send().await;
            if me.map(|r| r.status()).ok() != Some(StatusCode::OK) {
                missing.push(format!("m{}'s session", outcome.member));
            }
        }
    }
    let expected: BTreeSet<String> = outcomes
        .iter()
        .chain(&again)
        .filter(|o| succeeded(o.forgot))
        .map(|o| format!("m{}@chu.example.fr", o.member))
        .collect();
    let outbox = work.path().join("outbox");
    let mailed =
        |sent: &str, address: &str| sent.contains(&format!("<{address}>")) || sent.contains(&format!(" {address}\n"));
    for _ in 0..100 {
        let sent = recipients(&outbox);
        if expected.iter().all(|a| mailed(&sent, a)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = recipients(&outbox);
    missing
        .extend(expected.iter().filter(|a| !mailed(&sent, a)).map(|address| format!("the code mailed to {address}")));
    assert!(missing.is_empty(), "acknowledged, then lost: {missing:?}");
    assert_eq!(
        ready,
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "readiness tells the truth while the disk is full\n{}",
        std::fs::read_to_string(work.path().join("serve.log")).unwrap_or_default()
    );
}

/// A newer guichet migrated the database while this instance runs: it stops writing and
/// says so (readiness, a calm 503 on every form), and `migrate` says what happened.
#[tokio::test]
async fn a_database_migrated_by_a_newer_guichet_stops_this_instance_writing() {
    use guichet_store::testing::TestDatabase;
    let app = crate::helpers::spawn_app().await;
    app.add_member("marie").await;
    let future = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (99999, 'from a newer guichet', TRUE, X'00', 0)";
    TestDatabase::execute(&app.app.store, future).await.unwrap();
    let ready = app.client.get(format!("{}/readyz", app.address)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().await.unwrap_or_default().contains("newer than this binary"));
    let login = app.login("marie", PASSWORD).await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE, "{}", login.body);
    assert!(login.body.contains("Mise à jour en cours"), "{}", login.body);
    let page = app.client.get(format!("{}/login", app.address)).send().await.map(|r| r.status()).ok();
    assert_eq!(page, Some(StatusCode::OK), "reading goes on");
    let migrate = crate::cli::guichet(&app, &["migrate"], None);
    let said = String::from_utf8_lossy(&migrate.stderr);
    assert!(!migrate.status.success() && said.contains("this database is newer than this binary"), "{said}");

    TestDatabase::execute(&app.app.store, "DELETE FROM _sqlx_migrations WHERE version = 99999").await.unwrap();
    let ready = app.client.get(format!("{}/readyz", app.address)).send().await.map(|r| r.status()).ok();
    assert_eq!(ready, Some(StatusCode::OK));
    assert_eq!(app.login("marie", PASSWORD).await.status, StatusCode::SEE_OTHER, "writes resume");
}
