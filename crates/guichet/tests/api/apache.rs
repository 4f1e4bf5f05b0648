//! Apache with mod_auth_openidc (Debian's packages), a relying party we did not write:
//! a member signs in to the Apache site through guichet, the site keeps them past the
//! access token's ten minutes by refreshing it, and after "Se déconnecter" in guichet
//! the site asks for a login again (back-channel logout).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use guichet_core::SignedDuration;
use guichet_core::oidc::NewClient;
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestApp, browser, spawn_app_with};

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

/// Apache, stopped when dropped: SIGTERM, so that the parent takes its workers with it
/// (SIGKILL would leave them running), then SIGKILL if it is still there after five
/// seconds.
struct Apache(Child);

impl Drop for Apache {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn apache_installed() -> bool {
    if Path::new(APACHE).exists() && Path::new(MODULES).join("mod_auth_openidc.so").exists() {
        return true;
    }
    assert!(
        std::env::var_os("GUICHET_TEST_REQUIRE_APACHE").is_none(),
        "Apache and mod_auth_openidc are required (apt-get install apache2 libapache2-mod-auth-openidc)"
    );
    say_skipped!("SKIPPED (Apache): install apache2 and libapache2-mod-auth-openidc to run it");
    false
}

/// The site's configuration: everything under `/wiki/` is for members signed in through
/// guichet; the access token mod_auth_openidc holds is shown in a header, so that the
/// test sees it change when it is refreshed (any time less than 599 s are left: at the
/// second request). guichet's clock is moved forward eleven minutes while Apache's is
/// not: the slack on `iat` is raised to an hour so that Apache takes tokens signed
/// "in the future" (the one thing the moved clock would otherwise change).
fn configuration(dir: &Path, port: u16, issuer: &str, client_id: &str, secret: &str) -> String {
    let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let user = if as_root { "User www-data\nGroup www-data\n" } else { "" };
    let dir = dir.display();
    format!(
        "ServerName 127.0.0.1\n\
         Listen 127.0.0.1:{port}\n\
         {user}\
         PidFile {dir}/apache.pid\n\
         DefaultRuntimeDir {dir}\n\
         Mutex file:{dir} default\n\
         ErrorLog {dir}/error.log\n\
         LogLevel warn auth_openidc:info\n\
         LoadModule mpm_event_module {MODULES}/mod_mpm_event.so\n\
         LoadModule authn_core_module {MODULES}/mod_authn_core.so\n\
         LoadModule authz_core_module {MODULES}/mod_authz_core.so\n\
         LoadModule authz_user_module {MODULES}/mod_authz_user.so\n\
         LoadModule headers_module {MODULES}/mod_headers.so\n\
         LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so\n\
         DocumentRoot {dir}/site\n\
         OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration\n\
         OIDCClientID {client_id}\n\
         OIDCClientSecret {secret}\n\
         OIDCRedirectURI http://127.0.0.1:{port}/wiki/redirect_uri\n\
         OIDCCryptoPassphrase une-phrase-de-test-assez-longue\n\
         OIDCScope \"openid profile groups\"\n\
         OIDCRefreshAccessTokenBeforeExpiry 599\n\
         OIDCIDTokenIatSlack 3600\n\
         <Location /wiki/>\n\
           AuthType openid-connect\n\
           Require valid-user\n\
           Header always set X-Access-Token \"%{{OIDC_access_token}}e\"\n\
         </Location>\n"
    )
}

/// Follows redirects across guichet and the Apache site, logging in at guichet when
/// asked, until a page: its status, headers and body.
async fn visit(
    app: &TestApp,
    browser: &reqwest::Client,
    url: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut url = url.to_owned();
    for _ in 0..10 {
        let response = browser.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let Some(location) = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
            let (status, headers) = (response.status(), response.headers().clone());
            return (status, headers, response.text().await.unwrap_or_default());
        };
        let next = reqwest::Url::parse(&url).unwrap().join(&location).unwrap();
        if next.as_str().starts_with(&format!("{}/login", app.address)) {
            let page = app.get_with(browser, &format!("{}?{}", next.path(), next.query().unwrap_or_default())).await;
            let form = [
                ("csrf_token", page.csrf_token()),
                ("identifier", "marie".to_owned()),
                ("password", PASSWORD.to_owned()),
                ("next", crate::helpers::field_value(&page.body, "next").unwrap_or_default()),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let logged_in = app.post_form(browser, "/login", &form).await;
            url = format!("{}{}", app.address, logged_in.location().unwrap_or("/me"));
        } else {
            url = next.to_string();
        }
    }
    panic!("too many redirects from {url}");
}

fn access_token(headers: &reqwest::header::HeaderMap) -> String {
    headers.get("x-access-token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_apache_site_keeps_the_member_with_refresh_tokens_and_lets_go_at_logout() {
    if !apache_installed() {
        return;
    }
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    app.add_member("marie").await;
    let port = crate::cli::free_port();
    let redirect_uri = format!("http://127.0.0.1:{port}/wiki/redirect_uri");
    let registered = app
        .app
        .state
        .oidc
        .register(NewClient {
            name: "Wiki (Apache)".to_owned(),
            redirect_uris: vec![redirect_uri.clone()],
            backchannel_logout_uri: Some(format!("{redirect_uri}?logout=backchannel")),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("site/wiki")).unwrap();
    std::fs::write(dir.path().join("site/wiki/index.html"), "<p>Le wiki du réseau</p>\n").unwrap();
    // Apache's workers (www-data, when run as root) read the site.
    let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(dir.path()).status();
    let secret = registered.secret.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default();
    let conf = dir.path().join("apache.conf");
    std::fs::write(&conf, configuration(dir.path(), port, &app.address, registered.client.id.as_str(), &secret))
        .unwrap();
    let child = Command::new(APACHE)
        .arg("-f")
        .arg(&conf)
        .arg("-DFOREGROUND")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("apache2: {e}"));
    let _apache = Apache(child);
    let site = format!("http://127.0.0.1:{port}/wiki/index.html");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();

    // Signed in through guichet.
    let member = browser();
    let (status, headers, body) = visit(&app, &member, &site).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", log());
    assert!(body.contains("Le wiki du réseau"));
    let first = access_token(&headers);
    assert!(first.split('.').count() == 3, "mod_auth_openidc holds guichet's access token: {first:?}");

    // Past ten minutes (guichet's clock), the site refreshes and keeps the member.
    app.advance(SignedDuration::from_mins(11));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, headers, _) = visit(&app, &member, &site).await;
    assert_eq!(status, StatusCode::OK, "{}", log());
    let refreshed = access_token(&headers);
    assert_ne!(refreshed, first, "refreshed with the refresh token\n{}", log());
    let userinfo = |token: String| {
        let url = format!("{}/oidc/userinfo", app.address);
        async move {
            let client = crate::helpers::http_client().build().unwrap();
            client.get(url).bearer_auth(token).send().await.unwrap().status()
        }
    };
    assert_eq!(userinfo(first).await, StatusCode::UNAUTHORIZED, "the first access token has expired");
    assert_eq!(userinfo(refreshed).await, StatusCode::OK, "the refreshed one is live: the member is still in");

    // "Se déconnecter" in guichet: the site hears of it on its back channel.
    let me = app.get_with(&member, "/me").await;
    let out = app.post_form(&member, "/logout", &[("csrf_token", &me.csrf_token())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let mut asked_again = false;
    for _ in 0..50 {
        let response = member.get(&site).send().await.unwrap();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        if response.status() == StatusCode::FOUND && location.starts_with(&format!("{}/oidc/authorize", app.address)) {
            asked_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(asked_again, "the site asks for a login again\n{}", log());
    app.add_account("boss", guichet_core::account::Role::Admin).await;
    let admin = browser();
    app.login_with(&admin, "boss", PASSWORD, &[]).await;
    let page = app.get_with(&admin, "/admin/clients").await;
    assert!(page.body.contains(">transmise<"), "the console shows the logout delivered\n{}", page.body);
}
