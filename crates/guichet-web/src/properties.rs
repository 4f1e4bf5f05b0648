//! Property tests of what the web layer reads from requests: cookies, `X-Forwarded-For`,
//! form bodies, the CSRF check, the public URL's origin. No input makes them panic.

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::FromRequest as _;
use axum::http::{HeaderMap, HeaderValue, Request, header};
use proptest::prelude::*;
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::TrustedProxies;
use crate::cookies::{Cookie, Cookies};
use crate::pages::{Form, secret};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

#[derive(Deserialize)]
struct LoginLike {
    #[serde(default)]
    identifier: String,
    #[serde(default, deserialize_with = "secret")]
    _password: SecretString,
}

/// What the `Form` extractor makes of a body.
fn read_form(body: impl Into<Body>) -> Result<Form<LoginLike>, crate::error::ErrorPage> {
    let request = Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.into())
        .unwrap();
    runtime().block_on(Form::<LoginLike>::from_request(request, &()))
}

proptest! {
    #[test]
    fn cookie_headers_are_read_without_panic(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            headers.insert(header::COOKIE, value);
        }
        for cookie in [Cookie::Session, Cookie::Csrf, Cookie::Notice, Cookie::Device, Cookie::Pass] {
            let _ = Cookies::default().read(cookie, &headers);
            let _ = Cookies { secure: true, domain: Some("example.org".into()) }.read(cookie, &headers);
        }
    }

    #[test]
    fn a_cookie_set_is_read_back(value in "[A-Za-z0-9_.~-]{1,200}") {
        let mut headers = HeaderMap::new();
        let set = Cookies { secure: true, domain: None }.set_lasting(Cookie::Device, &value, 60);
        let pair = set.to_str().ok().and_then(|s| s.split(';').next()).unwrap_or_default().to_owned();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {pair}")).unwrap());
        prop_assert_eq!(Cookies { secure: true, domain: None }.read(Cookie::Device, &headers), Some(value));
    }

    #[test]
    fn forwarded_for_is_read_without_panic(peer in any::<IpAddr>(), header in any::<String>()) {
        let proxies = TrustedProxies::parse("127.0.0.0/8, ::1, 10.0.0.0/8").unwrap_or_default();
        let _ = proxies.client_address(peer, Some(&header));
    }

    #[test]
    fn forwarded_addresses_are_read_back(client in any::<IpAddr>(), port in 1u16..) {
        let proxies = TrustedProxies::parse("10.0.0.1").unwrap_or_default();
        let proxy: IpAddr = [10, 0, 0, 1].into();
        let canonical = match client { IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4), v4 => v4 };
        let written = match client { IpAddr::V4(a) => format!("{a}:{port}"), IpAddr::V6(a) => format!("[{a}]:{port}") };
        if !canonical.is_loopback() && canonical != proxy {
            prop_assert_eq!(proxies.client_address(proxy, Some(&client.to_string())), canonical);
            prop_assert_eq!(proxies.client_address(proxy, Some(&written)), canonical);
        }
    }

    #[test]
    fn proxy_lists_are_parsed_without_panic(raw in any::<String>()) {
        let _ = TrustedProxies::parse(&raw);
    }

    #[test]
    fn form_bodies_are_read_without_panic(body in proptest::collection::vec(any::<u8>(), 0..500)) {
        if let Ok(Form(form)) = read_form(body) {
            prop_assert!(form.identifier.len() <= 500);
        }
    }

    #[test]
    fn typed_form_fields_are_read_back(identifier in any::<String>()) {
        let body = form_urlencoded::Serializer::new(String::new()).append_pair("identifier", &identifier).finish();
        prop_assert_eq!(read_form(body).ok().map(|Form(f)| f.identifier), Some(identifier));
    }

    #[test]
    fn the_csrf_check_reads_any_body_and_origin(body in proptest::collection::vec(any::<u8>(), 0..300), origin in any::<String>()) {
        let mut request = Request::builder().method("POST").body(Body::from(body)).unwrap();
        if let Ok(value) = HeaderValue::from_str(&origin) {
            request.headers_mut().insert(header::ORIGIN, value);
        }
        let checked = runtime().block_on(crate::visitor::checked(request, "expected-token", "https://membres.example.org"));
        prop_assert!(checked.is_err(), "no random body carries the expected token");
    }

    #[test]
    fn public_origins_are_made_from_any_url(url in any::<String>()) {
        let settings = crate::state::WebSettings {
            site_name: String::new(),
            public_url: url,
            cookies: crate::cookies::Cookies { secure: true, domain: None },
            return_hosts: guichet_core::redirect::ReturnHosts::default(),
            trusted_proxies: TrustedProxies::default(),
            time_zone: jiff::tz::TimeZone::UTC,
            assistance_email: None,
            mail_help: crate::state::MailHelp::default(),
            privacy: crate::state::PrivacyNotice::default(),
        };
        let origin = settings.public_origin();
        prop_assert!(origin.contains("://"));
    }
}
