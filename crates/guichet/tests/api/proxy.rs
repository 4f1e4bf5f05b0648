//! The members' area behind a real nginx (Debian's `nginx-light`, which has
//! `auth_request`): nginx asks guichet's `/auth/check` before serving `/espace/`, from a
//! small upstream of ours that echoes the `Remote-*` headers it receives. Plus
//! `/auth/forward` as Traefik and Caddy call it.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use guichet_core::account::Role;
use reqwest::StatusCode;
use reqwest::cookie::CookieStore as _;

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app_with, spawn_app_with_access};

const NGINX: &str = "/usr/sbin/nginx";

/// A free port on loopback (the listener is dropped at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18_081)
}

/// The site behind the proxy: answers every path with the identity headers it got.
async fn echo_upstream() -> SocketAddr {
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        format!(
            "espace membres; user={}; name={}; email={}; groups={}",
            get("remote-user"),
            get("remote-name"),
            get("remote-email"),
            get("remote-groups")
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// The README's nginx block, as an operator would paste it.
fn readme_nginx_block() -> String {
    let readme = include_str!("../../../../README.md");
    let block = readme.split("```nginx\n").nth(1).and_then(|rest| rest.split("```").next());
    block.unwrap_or_else(|| panic!("the README has no nginx block")).to_owned()
}

/// nginx in the foreground, on its own folder, with the README's configuration.
struct Nginx {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(port: u16, guichet: &str, upstream: SocketAddr) -> Option<Self> {
        if !std::path::Path::new(NGINX).exists() {
            assert!(std::env::var_os("CI").is_none(), "nginx-light must be installed under CI");
            say_skipped!("SKIPPED (nginx): install Debian's nginx-light to run it");
            return None;
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path().display();
        let guichet = guichet.trim_start_matches("http://");
        let conf = format!(
            r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream guichet {{ server {guichet}; }}
  upstream espace {{ server {upstream}; }}
  server {{
    listen 127.0.0.1:{port};
    include {d}/site.conf;
  }}
}}
"#
        );
        std::fs::write(dir.path().join("site.conf"), readme_nginx_block()).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, conf).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(NGINX)
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("nginx: {e}"));
        Some(Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir })
    }

    async fn ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.url.trim_start_matches("http://")).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not start");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// guichet behind nginx: the public URL is nginx's, nginx is trusted, `/espace/bureau/`
/// is for the `bureau` group.
async fn behind_nginx(backend: Backend) -> Option<(TestApp, Nginx)> {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let bureau = format!("{public}/espace/bureau/");
    let access: [(&str, &[&str]); 1] = [(&bureau, &["bureau"])];
    let settings = [("GUICHET_PUBLIC_URL", public.as_str()), ("GUICHET_TRUSTED_PROXIES", "127.0.0.1")];
    let app = spawn_app_with_access(backend, &settings, &access).await;
    let nginx = Nginx::start(port, &app.address, echo_upstream().await)?;
    nginx.ready().await;
    app.app.state.groups.add("bureau", "").await.unwrap_or_else(|e| panic!("{e:?}"));
    Some((app, nginx))
}

async fn get(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (StatusCode, Option<String>, String) {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, location, response.text().await.unwrap_or_default())
}

/// `url` as a query value (what guichet's `/auth/forward` writes).
fn encoded(url: &str) -> String {
    form_urlencoded::byte_serialize(url.as_bytes()).collect()
}

/// A GET with the path sent exactly as written (an HTTP client would tidy `..` away),
/// returning the status code.
async fn raw_get(nginx: &Nginx, path: &str, cookie: &str) -> u16 {
    raw_get_as(nginx, nginx.url.trim_start_matches("http://"), path, cookie).await
}

/// The same, with the `Host` header the browser chooses.
async fn raw_get_as(nginx: &Nginx, host: &str, path: &str, cookie: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = nginx.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("{e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap_or_else(|e| panic!("{e}"));
    let response = String::from_utf8_lossy(&response);
    response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// Logs in through nginx from the page a redirect led to, and returns where it went.
async fn log_in_through(nginx: &Nginx, client: &reqwest::Client, login_path: &str) -> Option<String> {
    let (_, _, page) = get(client, &format!("{}{login_path}", nginx.url), &[]).await;
    let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
    let next = crate::helpers::field_value(&page, "next").unwrap_or_default();
    let form = [("csrf_token", token.as_str()), ("identifier", "marie"), ("password", PASSWORD), ("next", &next)];
    let response =
        client.post(format!("{}/login", nginx.url)).form(&form).send().await.unwrap_or_else(|e| panic!("{e}"));
    response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn the_members_area_opens_only_through_guichet(backend: Backend) {
    let Some((app, nginx)) = behind_nginx(backend).await else { return };
    app.add_member("marie").await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let intro = format!("{}/espace/cours/intro.html?page=2&lang=fr", nginx.url);
    let (status, location, _) = get(&client, &intro, &[]).await;
    let login = format!("{}/login?next={}", nginx.url, encoded(&intro));
    assert_eq!((status, location.as_deref()), (StatusCode::FOUND, Some(login.as_str())));
    let login_path = login.trim_start_matches(&nginx.url);
    let back = log_in_through(&nginx, &client, login_path).await;
    assert_eq!(back.as_deref(), Some(intro.as_str()), "back where the member was going, query and all");
    let (status, _, body) = get(&client, &intro, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("user=marie") && body.contains("email=marie@chu.example.fr"), "{body}");

    // A group rule: 403 until the member joins the group, then 200.
    let bureau = format!("{}/espace/bureau/pv.pdf", nginx.url);
    let (status, _, page) = get(&client, &bureau, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Accès réservé") && page.contains("lang=\"fr\""), "guichet's page, not nginx's: {page}");
    let cookie = jar.cookies(&nginx.url.parse().unwrap_or_else(|e| panic!("{e}")));
    let cookie = cookie.and_then(|c| c.to_str().ok().map(str::to_owned)).unwrap_or_default();
    for sneaky in ["/espace/cours/../bureau/pv.pdf", "/espace/cours/%2e%2e/bureau/pv.pdf", "/espace//bureau/pv.pdf"] {
        assert_eq!(raw_get(&nginx, sneaky, &cookie).await, 403, "no way round the rule: {sneaky}");
    }
    // nginx serves any Host on its only server: another port must not make another site.
    assert_eq!(raw_get_as(&nginx, "127.0.0.1:1", "/espace/bureau/pv.pdf", &cookie).await, 403);
    assert_eq!(raw_get_as(&nginx, "127.0.0.1:1", "/espace/cours/", &cookie).await, 403, "a site no rule names");
    // From the command line (another process), the change reaches the gate within a poll.
    let joined = crate::cli::guichet(&app, &["member", "join", "marie", "bureau"], None);
    assert!(joined.status.success());
    assert_eq!(settled(&client, &bureau, StatusCode::OK).await, StatusCode::OK, "a group change applies");
    let (_, _, body) = get(&client, &bureau, &[]).await;
    assert!(body.contains("groups=bureau"), "{body}");

    // A forged identity from the browser never reaches the site as identity.
    let (_, _, body) = get(&client, &format!("{}/espace/x", nginx.url), &[("remote-user", "admin")]).await;
    assert!(body.contains("user=marie") && !body.contains("user=admin"), "{body}");
    let stranger = browser();
    let (status, _, _) = get(&stranger, &format!("{}/espace/x", nginx.url), &[("remote-user", "marie")]).await;
    assert_eq!(status, StatusCode::FOUND);

    // Logging out ends access at once.
    let (_, _, me) = get(&client, &format!("{}/me", nginx.url), &[]).await;
    let token = crate::helpers::field_value(&me, "csrf_token").unwrap_or_default();
    client.post(format!("{}/logout", nginx.url)).form(&[("csrf_token", token)]).send().await.ok();
    assert_eq!(get(&client, &format!("{}/espace/x", nginx.url), &[]).await.0, StatusCode::FOUND);
}

/// The status `url` settles on after a change made in another process: the gate sees
/// the database's change counter move within one poll (50 ms); this waits up to 2 s.
async fn settled(client: &reqwest::Client, url: &str, expected: StatusCode) -> StatusCode {
    let mut status = get(client, url, &[]).await.0;
    for _ in 0..40 {
        if status == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = get(client, url, &[]).await.0;
    }
    status
}

async fn disabling_an_account_ends_its_access_at_once(backend: Backend) {
    let Some((app, nginx)) = behind_nginx(backend).await else { return };
    let marie = app.add_member("marie").await;
    let client = browser();
    let espace = format!("{}/espace/", nginx.url);
    log_in_through(&nginx, &client, "/login?next=/espace/").await;
    assert_eq!(get(&client, &espace, &[]).await.0, StatusCode::OK);

    // From the console: the very next request is refused.
    app.add_account("boss", Role::Admin).await;
    let boss = browser();
    app.login_with(&boss, "boss", PASSWORD, &[]).await;
    let page = format!("/admin/members/{}", marie.id.get());
    let disabled = app.submit(&boss, &page, &format!("{page}/disable"), &[]).await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER, "{}", disabled.body);
    assert_eq!(get(&client, &espace, &[]).await.0, StatusCode::FOUND);

    // From the command line (another process): within a poll.
    assert!(crate::cli::guichet(&app, &["member", "enable", "marie"], None).status.success());
    log_in_through(&nginx, &client, "/login?next=/espace/").await;
    assert_eq!(settled(&client, &espace, StatusCode::OK).await, StatusCode::OK);
    assert!(crate::cli::guichet(&app, &["member", "disable", "marie"], None).status.success());
    assert_eq!(settled(&client, &espace, StatusCode::FOUND).await, StatusCode::FOUND);
}

on_both_backends!(the_members_area_opens_only_through_guichet, disabling_an_account_ends_its_access_at_once,);

#[tokio::test]
async fn forward_auth_reads_the_target_only_from_trusted_proxies() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_RETURN_HOSTS", "docs.example.org")]).await;
    app.add_account("marie", Role::Member).await;
    let proxy_headers =
        [("x-forwarded-proto", "https"), ("x-forwarded-host", "docs.example.org"), ("x-forwarded-uri", "/a?b=c")];
    // Not signed in, from an untrusted peer: the login page, without a `next` it said.
    let (status, location, _) = get(&browser(), &format!("{}/auth/forward", app.address), &proxy_headers).await;
    let login = format!("{}/login", app.address);
    assert_eq!((status, location.as_deref()), (StatusCode::FOUND, Some(login.as_str())));
    assert_eq!(get(&browser(), &format!("{}/auth/check", app.address), &[]).await.0, StatusCode::UNAUTHORIZED);
    // Signed in: 200 with the identity, and no cookie set.
    app.login("marie", PASSWORD).await;
    let response = app.client.get(format!("{}/auth/check", app.address)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("remote-user").and_then(|v| v.to_str().ok()), Some("marie"));
    assert!(response.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn forward_auth_sends_the_browser_to_login_and_back() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("GUICHET_RETURN_HOSTS", "docs.example.org"), ("GUICHET_TRUSTED_PROXIES", "127.0.0.1")],
    )
    .await;
    let proxy_headers =
        [("x-forwarded-proto", "https"), ("x-forwarded-host", "docs.example.org"), ("x-forwarded-uri", "/a?b=c")];
    let (status, location, _) = get(&browser(), &format!("{}/auth/forward", app.address), &proxy_headers).await;
    let expected = format!("{}/login?next=https%3A%2F%2Fdocs.example.org%2Fa%3Fb%3Dc", app.address);
    assert_eq!((status, location.as_deref()), (StatusCode::FOUND, Some(expected.as_str())));
    // X-Original-URL from the browser, passed along beside the proxy's X-Forwarded-*: refused.
    let both = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "docs.example.org"),
        ("x-forwarded-uri", "/bureau/pv.pdf"),
        ("x-original-url", "https://docs.example.org/public/"),
    ];
    assert_eq!(get(&browser(), &format!("{}/auth/forward", app.address), &both).await.0, StatusCode::FORBIDDEN);
    let elsewhere = [("x-original-url", "https://evil.example/")];
    let (_, location, _) = get(&browser(), &format!("{}/auth/forward", app.address), &elsewhere).await;
    assert_eq!(location, Some(format!("{}/login", app.address)), "no next to a host not listed");
}

/// The `Set-Cookie` headers of a response, by cookie name.
fn set_cookies(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once('=').map(|(name, rest)| (name.to_owned(), rest.to_owned())))
        .collect()
}

#[tokio::test]
async fn sub_domains_get_a_pass_that_opens_the_gate_but_not_guichet() {
    let settings = [
        ("GUICHET_PUBLIC_URL", "http://membres.example.org"),
        ("GUICHET_COOKIE_DOMAIN", "example.org"),
        ("GUICHET_COOKIE_SECURE", "false"),
    ];
    let app = spawn_app_with(Backend::Sqlite, &settings).await;
    app.add_account("marie", Role::Member).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let login = client.get(format!("{}/login", app.address)).send().await.unwrap_or_else(|e| panic!("{e}"));
    let csrf_cookie =
        set_cookies(&login).into_iter().find(|(n, _)| n == "guichet_csrf").map(|(_, v)| v).unwrap_or_default();
    let csrf_cookie = csrf_cookie.split(';').next().unwrap_or_default().to_owned();
    let page = login.text().await.unwrap_or_default();
    let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
    let form = [("csrf_token", token.as_str()), ("identifier", "marie"), ("password", PASSWORD)];
    let logged_in = client
        .post(format!("{}/login", app.address))
        .header("cookie", format!("guichet_csrf={csrf_cookie}"))
        .form(&form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cookies = set_cookies(&logged_in);
    let cookie = |name: &str| cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let (session, pass) = (cookie("guichet_session"), cookie("guichet_pass"));
    assert!(!session.contains("Domain="), "the session stays on guichet's host: {session}");
    assert!(pass.contains("Domain=example.org"), "{pass}");
    let value = |c: &str| c.split(';').next().unwrap_or_default().to_owned();
    let (session, pass) = (value(&session), value(&pass));
    assert_ne!(session, pass);

    let check = |cookie: String| {
        let request = client.get(format!("{}/auth/check", app.address)).header("cookie", cookie);
        async move { request.send().await.map(|r| r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR) }
    };
    assert_eq!(check(format!("guichet_pass={pass}")).await, StatusCode::OK, "the pass opens the gate");
    let forged = format!("guichet_pass={}x", &pass[..pass.len() - 1]);
    assert_eq!(check(forged).await, StatusCode::UNAUTHORIZED, "a tampered pass does not");
    let me = client.get(format!("{}/me", app.address)).header("cookie", format!("guichet_pass={pass}"));
    let me = me.send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(me.status(), StatusCode::SEE_OTHER, "the pass does not open guichet's own pages");

    // Logging out (on guichet) ends the pass too.
    let me = client.get(format!("{}/me", app.address)).header("cookie", format!("guichet_session={session}"));
    let page = me.send().await.unwrap_or_else(|e| panic!("{e}")).text().await.unwrap_or_default();
    let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
    let out = client
        .post(format!("{}/logout", app.address))
        .header("cookie", format!("guichet_session={session}"))
        .form(&[("csrf_token", token)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(set_cookies(&out).iter().any(|(n, v)| n == "guichet_pass" && v.contains("Max-Age=0")));
    assert_eq!(check(format!("guichet_pass={pass}")).await, StatusCode::UNAUTHORIZED);
}
