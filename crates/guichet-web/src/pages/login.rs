//! `GET/POST /login` and `POST /logout`.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use guichet_core::login::{LoggedIn, LoginError, PendingLogin};
use guichet_core::oidc::{FrontChannel, SignedInto};
use guichet_core::second_factor::Factors;
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::Client;
use crate::cookies::Cookie;
use crate::error::{WebError, busy};
use crate::pages::{Form, Layout, allow_form_destination, form_destination, next_in_query, render, secret, see_other};
use crate::state::AppState;
use crate::visitor::Visitor;
use guichet_core::french as format;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/login", get(show).post(submit)).route("/logout", post(logout))
}

/// Why the form is shown again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// Any failed login: one message for all.
    Failed,
    /// Too many failures from this address.
    Throttled(String),
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    identifier: String,
    problem: Option<Problem>,
    threshold: u32,
    lock_duration: String,
    password_changed: bool,
    /// Just logged out: said, and the applications' front channels loaded.
    logged_out: bool,
    /// The applications told in this browser.
    frames: Vec<FrontChannel>,
    /// Where to go after login (already checked), carried by the form.
    next: String,
    /// The application the member is signing in for, by name.
    application: Option<String>,
    /// Offers the passkey button (where the browser can use one).
    passkeys: bool,
    /// The upstream providers' buttons: where each leads (with `next`), and its name.
    upstreams: Vec<(String, String)>,
}

impl LoginPage {
    fn new(state: &AppState, visitor: &Visitor, identifier: String, problem: Option<Problem>, next: String) -> Self {
        let policy = state.authenticator.lockout_policy();
        Self {
            layout: Layout::for_visitor(state, visitor),
            identifier,
            problem,
            threshold: policy.threshold,
            lock_duration: format::duration(policy.duration),
            password_changed: false,
            logged_out: false,
            frames: Vec::new(),
            application: None,
            passkeys: state.passkeys.is_some(),
            upstreams: upstream_buttons(state, &next),
            next,
        }
    }
}

async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebError> {
    let next = next_in_query(&state, &uri);
    if let Some(session) = &visitor.session {
        // Already in: straight on (a disabled account's session shows the form again).
        let account = state.members.find_by_id(session.account_id).await?;
        if let Some(account) = account.filter(|a| a.disabled_at.is_none()) {
            // Where they are going asks for a second factor this session did not give:
            // give it (or enrol one first), then on.
            if let Some(next) =
                next.as_deref().filter(|n| !session.factors.has_second() && state.gate.asks_second_factor(n))
                && !session.must_change_password
            {
                let enrolled = state.second_factors.status(account.id).await?.has_second();
                let page = if enrolled { "/login/second-factor" } else { "/me/second-factor" };
                let next = form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
                return Ok(see_other(&format!("{page}?next={next}"), "/me"));
            }
            let target = after_login(next.as_deref(), session.must_change_password);
            return Ok(see_other(&target, "/me"));
        }
    }
    let destination = match &next {
        Some(next) => form_destination(&state, next).await,
        None => None,
    };
    let jar = &state.settings.cookies;
    let notice = jar.read(Cookie::Notice, &headers);
    // After a reset, the notice names the account (percent-encoded): the form is filled.
    let changed = notice.as_deref().and_then(|n| n.strip_prefix("password_changed"));
    let identifier = changed
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|raw| form_urlencoded::parse(format!("i={raw}").as_bytes()).next().map(|(_, v)| v.into_owned()))
        .and_then(|raw| guichet_core::account::Identifier::parse(&raw).ok())
        .map(|identifier| identifier.to_string())
        .unwrap_or_default();
    // After a logout, the notice names the session and the applications it signed in to.
    let logged_out = notice.as_deref().and_then(|n| n.strip_prefix("logged_out"));
    let frames = match logged_out.and_then(|rest| rest.strip_prefix(':')).and_then(SignedInto::decode) {
        Some(signed_into) => state.oidc.front_channel(&signed_into).await?,
        None => Vec::new(),
    };
    let origins: Vec<String> = frames.iter().map(|f| f.origin.clone()).collect();
    let page = LoginPage {
        password_changed: changed.is_some(),
        logged_out: logged_out.is_some(),
        frames,
        application: destination.as_ref().map(|d| d.name.clone()),
        ..LoginPage::new(&state, &visitor, identifier, None, next.unwrap_or_default())
    };
    let mut response = render(StatusCode::OK, &page)?;
    if notice.is_some() {
        response.headers_mut().append(SET_COOKIE, jar.clear(Cookie::Notice));
    }
    let mut response = allow_form_destination(response, destination.as_ref());
    let policy = response.headers().get(CONTENT_SECURITY_POLICY);
    if let Some(policy) = crate::headers::csp_with_frames(policy, &origins) {
        response.headers_mut().insert(CONTENT_SECURITY_POLICY, policy);
    }
    Ok(with_passkey_script(&state, response))
}

/// The upstream providers' buttons: `/login/upstream/{id}`, carrying `next`.
fn upstream_buttons(state: &AppState, next: &str) -> Vec<(String, String)> {
    let query = if next.is_empty() {
        String::new()
    } else {
        format!("?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>())
    };
    state.upstreams.providers().into_iter().map(|p| (format!("/login/upstream/{}{query}", p.id), p.name)).collect()
}

/// Where a signed-in member goes: where they were going (`next`, already checked),
/// through the password change first when a temporary password must be replaced.
/// (Staff land on "Mon espace" too, as the contract says, where the console is linked.)
pub(crate) fn after_login(next: Option<&str>, must_change_password: bool) -> String {
    match (next, must_change_password) {
        (Some(next), true) => {
            format!("/me/password?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>())
        }
        (None, true) => "/me/password".to_owned(),
        (Some(next), false) => next.to_owned(),
        (None, false) => "/me".to_owned(),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    identifier: String,
    #[serde(default, deserialize_with = "secret")]
    password: SecretString,
    #[serde(default)]
    next: String,
}

async fn submit(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    // Kept in the form when it is shown again; cut so that a pasted novel is not echoed.
    let typed: String = form.identifier.trim().chars().take(100).collect();
    let next = state.settings.return_hosts.accept(&form.next);
    let jar = &state.settings.cookies;
    let device = jar.read(Cookie::Device, &headers);
    let destination = match &next {
        Some(next) => form_destination(&state, next).await,
        None => None,
    };
    let outcome = match state.authenticator.login(&form.identifier, form.password, device.as_deref(), &context).await {
        Ok(LoggedIn { account, must_change_password, second_step: Some(step), .. }) => {
            // No session yet: the second factor first, within five minutes, in this browser.
            let pending =
                PendingLogin { account: account.id, device: step.device, proof: step.proof, must_change_password };
            let target = match next.as_deref() {
                Some(next) => format!(
                    "/login/second-factor?next={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                ),
                None => "/login/second-factor".to_owned(),
            };
            let mut response = see_other(&target, "/login/second-factor");
            let cookie = crate::pages::second_factor::pending_cookie(&state, &visitor, &pending);
            response.headers_mut().append(SET_COOKIE, cookie);
            Ok(response)
        }
        Ok(LoggedIn { account, device_cookie, must_change_password, second_step: None }) => {
            let replacing = visitor.session.as_ref().map(|s| &s.token_hash);
            let factors = Factors::PASSWORD;
            let (token, _) = state.sessions.open(account.id, context, replacing, must_change_password, factors).await?;
            // Staff who must enrol (a member just promoted) are sent to enrol first.
            let enrol = !must_change_password
                && matches!(state.console.door(account.id, factors).await?, guichet_core::console::Door::Enrol);
            let target =
                if enrol { "/me/second-factor".to_owned() } else { after_login(next.as_deref(), must_change_password) };
            let session = jar.set(Cookie::Session, token.expose());
            let lifetime = guichet_core::device::LIFETIME.as_secs();
            let device = jar.set_lasting(Cookie::Device, &device_cookie, lifetime);
            let mut response = see_other(&target, "/me");
            response.headers_mut().append(SET_COOKIE, session);
            response.headers_mut().append(SET_COOKIE, device);
            if jar.shares_a_pass() {
                response.headers_mut().append(SET_COOKIE, jar.set(Cookie::Pass, &state.sessions.pass(&token)));
            }
            Ok(response)
        }
        Err(LoginError::InvalidCredentials) => {
            let page = LoginPage {
                application: destination.as_ref().map(|d| d.name.clone()),
                ..LoginPage::new(&state, &visitor, typed, Some(Problem::Failed), next.unwrap_or_default())
            };
            render(StatusCode::UNAUTHORIZED, &page)
        }
        Err(LoginError::Throttled { retry_after }) => {
            let wait = format::duration(retry_after);
            let page =
                LoginPage::new(&state, &visitor, typed, Some(Problem::Throttled(wait)), next.unwrap_or_default());
            let mut response = render(StatusCode::TOO_MANY_REQUESTS, &page)?;
            let seconds = u64::try_from(retry_after.as_secs()).unwrap_or(1).max(1);
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
            Ok(response)
        }
        Err(LoginError::Busy) => Ok(busy().into_response()),
        Err(LoginError::Store(error)) => Err(error.into()),
        Err(LoginError::Hash(error)) => Err(error.into()),
    };
    // Shown again, the form still leads where it was going.
    outcome.map(|response| with_passkey_script(&state, allow_form_destination(response, destination.as_ref())))
}

/// The login page runs the passkey button's script when keys are on.
fn with_passkey_script(state: &AppState, response: Response) -> Response {
    if state.passkeys.is_some() && response.status() != StatusCode::SEE_OTHER {
        crate::headers::allow_script(response)
    } else {
        response
    }
}

async fn logout(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
) -> Result<Response, WebError> {
    let mut notice = "logged_out".to_owned();
    let mut upstream_logout = None;
    if let Some(session) = &visitor.session {
        // Read before the session ends: its end forgets which applications it opened,
        // and the provider's ID token.
        let signed_into = state.oidc.signed_into(session).await?;
        let upstream = match session.factors.upstream {
            Some(vouched) => state.sessions.upstream_id_token(session).await?.map(|token| (vouched, token)),
            None => None,
        };
        state.sessions.log_out(session, context).await?;
        state.messenger.signal().notify_one();
        if !signed_into.clients.is_empty() {
            notice = format!("logged_out:{}", signed_into.encode());
        }
        // Opened upstream: the provider's own session ends too, when it offers a logout
        // (asked once guichet's has ended: a provider that does not answer delays nothing
        // that matters).
        if let Some((vouched, id_token)) = upstream {
            let id = vouched.by.as_str();
            let back = format!("{}/login", state.settings.public_url.trim_end_matches('/'));
            let url = state.upstreams.logout_url(id, &id_token, &back).await;
            upstream_logout = url.map(|url| (state.upstreams.name_of(id), url));
        }
    }
    let mut response = match upstream_logout {
        // The provider's logout, then back to the login page (which tells the
        // applications); a form's redirect may not leave guichet, the page moves on.
        Some((name, url)) => {
            let layout = Layout { signed_in: false, staff: false, ..Layout::for_visitor(&state, &visitor) };
            let page = crate::pages::upstream::AwayPage {
                layout,
                title: "Vous êtes déconnecté".to_owned(),
                line: format!("Votre session est fermée ici ; nous fermons aussi votre session {name}."),
                name,
                url,
            };
            render(StatusCode::OK, &page)?
        }
        None => (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static("/login"))]).into_response(),
    };
    crate::pages::clear_session_cookies(&state, &mut response);
    response.headers_mut().append(SET_COOKIE, state.settings.cookies.set(Cookie::Notice, &notice));
    Ok(response)
}
