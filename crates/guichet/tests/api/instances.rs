//! Two `guichet serve` processes on one PostgreSQL database, one of them stopped while
//! mail is leaving: SIGTERM loses and repeats nothing; SIGKILL repeats at most the one
//! message that was on the wire, and delays the rest of its claim, never drops it.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use guichet_testkit::{Received, SmtpSink};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::cli::{free_port, healthy, serve_on};
use crate::helpers::{Backend, PASSWORD, TestApp, field_value, postgres_available, spawn_app_with};

/// Members asking for a code while an instance goes down.
const MEMBERS: usize = 12;
/// What a postman claims at a time: a, started alone, holds this many messages.
const CLAIM: usize = 10;
/// How long the mail server keeps a sender waiting for its answer: the window in which
/// a message is "on the wire" (delivered, not yet confirmed to its sender).
const HOLD: Duration = Duration::from_millis(700);

struct Instance {
    base: String,
    from: String,
    /// Its Prometheus listener.
    metrics: String,
    child: Child,
}

impl Instance {
    /// Messages waiting in the outbox (all instances'), as this one's metrics say.
    async fn outbox_pending(&self) -> Option<u64> {
        let page = crate::helpers::get(&self.metrics).await.ok()?.text().await.ok()?;
        let line = page.lines().find(|l| l.starts_with("guichet_outbox_pending "))?;
        line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|n| n as u64)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an instance on the app's database, sending to `sink` as `name`.
async fn instance(app: &TestApp, sink: &SmtpSink, name: &str, dir: &std::path::Path) -> Instance {
    let (port, metrics) = (free_port(), format!("127.0.0.1:{}", free_port()));
    let from = format!("guichet-{name}@reseau.example.org");
    let sender = format!("Guichet <{from}>");
    let transport = sink.url();
    let settings = [
        ("GUICHET_MAIL_TRANSPORT", transport.as_str()),
        ("GUICHET_MAIL_FROM", sender.as_str()),
        ("GUICHET_METRICS_LISTEN", metrics.as_str()),
    ];
    let child = serve_on(app.database_url(), port, dir, &settings);
    let metrics = format!("http://{metrics}/metrics");
    let instance = Instance { base: format!("http://127.0.0.1:{port}"), from, metrics, child };
    assert!(healthy(&crate::helpers::browser(), &instance.base).await, "instance {name} starts");
    instance
}

/// Posts `form` to `path` on `base`, with the CSRF token of the page at `path`.
async fn submit(base: &str, path: &str, form: &[(&str, &str)]) {
    let client = crate::helpers::browser();
    let url = format!("{base}{path}");
    let page = client.get(&url).send().await.unwrap().text().await.unwrap_or_default();
    let token = field_value(&page, "csrf_token").unwrap_or_else(|| panic!("no CSRF token on {path}"));
    let mut fields = vec![("csrf_token", token.as_str())];
    fields.extend_from_slice(form);
    let answer = client.post(&url).form(&fields).send().await.unwrap();
    assert!(!answer.status().is_server_error(), "{path}: {}", answer.status());
}

/// Two instances on one PostgreSQL database, mail leaving from both.
/// Fields drop in this order: the instances before the database they use.
struct Scene {
    a: Instance,
    b: Instance,
    sink: SmtpSink,
    /// Every address that must get mail.
    addresses: Vec<String>,
    _dir: tempfile::TempDir,
    _app: TestApp,
}

impl Scene {
    /// The mail the run had queued — a lock notice (five failures) and a code for
    /// each of twelve members — asked for on a third process that sends nothing. Then a
    /// starts alone, claims a batch of ten and sends two; then b starts and takes the
    /// three left. a thus holds most of its claim unsent. `None` without PostgreSQL.
    async fn mail_leaving() -> Option<Self> {
        if !postgres_available() {
            return None;
        }
        let app = spawn_app_with(Backend::Postgres, &[]).await;
        let sink = SmtpSink::start();
        sink.hold_answers(HOLD);
        let dir = tempfile::tempdir().unwrap();
        let locked = app.add_member("verrou").await;
        let mut addresses = vec![locked.email.to_string()];
        for n in 0..MEMBERS {
            addresses.push(app.add_member(&format!("membre{n}")).await.email.to_string());
        }
        for _ in 0..5 {
            submit(&app.address, "/login", &[("identifier", "verrou"), ("password", "pas le bon")]).await;
        }
        for address in &addresses[1..] {
            submit(&app.address, "/forgot-password", &[("email", address)]).await;
        }
        let a = instance(&app, &sink, "a", dir.path()).await;
        wait_until_sent(&sink, &a.from, 2).await;
        let b = instance(&app, &sink, "b", dir.path()).await;
        Some(Self { a, b, sink, addresses, _dir: dir, _app: app })
    }
}

/// Opens a login on `base` and sends all of it but the form's last byte: a request in
/// flight. The connection, and the byte left to send.
async fn login_in_flight(base: &str, identifier: &str) -> (TcpStream, Vec<u8>) {
    let page = crate::helpers::get(format!("{base}/login")).await.unwrap();
    let cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let token = field_value(&page.text().await.unwrap_or_default(), "csrf_token").unwrap_or_default();
    let form = format!("csrf_token={token}&identifier={identifier}&password={}", PASSWORD.replace(' ', "+"));
    let host = base.trim_start_matches("http://");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {host}\r\nCookie: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        cookies.join("; "),
        form.len()
    );
    let (head, last) = request.as_bytes().split_at(request.len() - 1);
    let mut stream = TcpStream::connect(host).await.unwrap();
    stream.write_all(head).await.unwrap();
    (stream, last.to_vec())
}

/// Sends the rest of a request in flight; the answer.
async fn finish(stream: &mut TcpStream, rest: &[u8]) -> String {
    stream.write_all(rest).await.unwrap_or_else(|e| panic!("the request in flight was cut: {e}"));
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Waits until `sent_by` has delivered `count` messages; the moment the last arrived.
async fn wait_until_sent(sink: &SmtpSink, sent_by: &str, count: usize) {
    for _ in 0..400 {
        if sink.messages().iter().filter(|m| m.from.contains(sent_by)).count() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{sent_by} did not send {count} message(s)");
}

/// Waits (up to `patience`) until every address got at least one message and the
/// outbox is empty, as `survivor`'s metrics say; what each address got.
async fn mail_by_address(
    sink: &SmtpSink,
    survivor: &Instance,
    addresses: &[String],
    patience: Duration,
) -> BTreeMap<String, Vec<Received>> {
    let by_address = || {
        let mut by_address: BTreeMap<String, Vec<Received>> = BTreeMap::new();
        for message in sink.messages() {
            for to in &message.to {
                by_address.entry(to.trim_matches(['<', '>']).to_owned()).or_default().push(message.clone());
            }
        }
        by_address
    };
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline
        && !(addresses.iter().all(|a| by_address().contains_key(a)) && survivor.outbox_pending().await == Some(0))
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    by_address()
}

/// SIGTERM while mail is leaving and a login is half sent: the instance stops accepting,
/// answers the login, finishes the message it is sending, hands the rest of its claim
/// back and exits promptly; the other instance sends the rest at once (it looks every
/// five seconds). Each member gets exactly one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_each_message_once_and_hands_the_rest_over_at_once() {
    let Some(mut scene) = Scene::mail_leaving().await else { return };
    let Scene { ref mut a, ref b, ref sink, ref addresses, .. } = scene;

    let (mut in_flight, last_byte) = login_in_flight(&a.base, "membre1").await;
    let asked = Instant::now();
    let pid = a.child.id().to_string();
    let term = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    assert!(term.is_ok_and(|s| s.success()), "SIGTERM sent");
    // It stops accepting, but the request it was reading is finished and answered.
    let mut refused = false;
    while !refused && asked.elapsed() < Duration::from_secs(5) {
        refused = crate::helpers::get(format!("{}/healthz", a.base)).await.is_err();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "no new connection after SIGTERM");
    let answer = finish(&mut in_flight, &last_byte).await;
    assert!(answer.starts_with("HTTP/1.1 303") && answer.contains("location: /me"), "{answer}");
    let mut exit = None;
    while exit.is_none() && asked.elapsed() < Duration::from_secs(20) {
        exit = a.child.try_wait().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped_in = asked.elapsed();
    assert!(exit.is_some_and(|s| s.success()), "instance a exits cleanly on SIGTERM ({exit:?})");
    assert!(stopped_in < Duration::from_secs(16), "within the postman's grace: {stopped_in:?}");

    // No lease to wait for: well under the two minutes a claim is held.
    let received = mail_by_address(sink, b, addresses, Duration::from_secs(40)).await;
    let counts: Vec<(&String, usize)> = received.iter().map(|(to, m)| (to, m.len())).collect();
    assert_eq!(b.outbox_pending().await, Some(0), "nothing left waiting in the outbox: {counts:?}");
    assert!(addresses.iter().all(|a| received.get(a).is_some_and(|m| m.len() == 1)), "{counts:?}");
    assert!(received.values().flatten().all(|m| m.at < asked + Duration::from_secs(30)), "sent at once");
    let by_b = received.values().flatten().filter(|m| m.from.contains(&b.from)).count();
    assert!(by_b > addresses.len() - CLAIM, "b sent part of a's claim, handed back ({by_b} sent by b)");
}

/// SIGKILL while mail is leaving: what the killed instance had claimed goes out from
/// the other when the lease runs out, and the one message it had on the wire is the
/// only one a member may get twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_repeats_only_the_message_on_the_wire() {
    let Some(mut scene) = Scene::mail_leaving().await else { return };
    let Scene { ref mut a, ref b, ref sink, ref addresses, .. } = scene;

    let _ = a.child.kill();
    let killed = Instant::now();
    let _ = a.child.wait();
    // What a had on the wire: its last message the sink received (answered or not).
    let on_the_wire = sink.messages().into_iter().rfind(|m| m.from.contains(&a.from));
    let on_the_wire = on_the_wire.and_then(|m| m.to.first().cloned()).unwrap_or_default();
    let on_the_wire = on_the_wire.trim_matches(['<', '>']).to_owned();

    // A claim is held two minutes; the other instance looks every five seconds.
    let received = mail_by_address(sink, b, addresses, Duration::from_secs(180)).await;
    let counts: Vec<(&String, usize)> = received.iter().map(|(to, m)| (to, m.len())).collect();
    assert_eq!(b.outbox_pending().await, Some(0), "nothing left waiting in the outbox: {counts:?}");
    assert!(addresses.iter().all(|a| received.contains_key(a)), "nothing is lost: {counts:?}");
    let repeated: Vec<&String> = received.iter().filter(|(_, m)| m.len() > 1).map(|(to, _)| to).collect();
    assert!(repeated.iter().all(|to| **to == on_the_wire), "only {on_the_wire} may get a repeat: {counts:?}");
    assert!(received.values().all(|m| m.len() <= 2), "{counts:?}");
    let late = received.values().flatten().filter(|m| m.at > killed + Duration::from_secs(60)).count();
    let by_b = received.values().flatten().filter(|m| m.from.contains(&b.from)).count();
    assert!(by_b > addresses.len() - CLAIM, "b sent part of a's claim ({by_b} sent by b)");
    assert!(late >= 2, "more than the repeat went out once a's lease ran out ({late} late): {counts:?}");
}
