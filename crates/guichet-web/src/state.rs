//! What every handler can reach: the use cases, wired once at start-up.

use std::sync::Arc;

use guichet_core::clock::Clock;
use guichet_core::console::Console;
use guichet_core::desk::Desk;
use guichet_core::gate::Gate;
use guichet_core::groups::Groups;
use guichet_core::login::Authenticator;
use guichet_core::me::MySpace;
use guichet_core::members::Members;
use guichet_core::oidc::Oidc;
use guichet_core::postman::Postman;
use guichet_core::recovery::Recovery;
use guichet_core::session::Sessions;

use guichet_core::redirect::ReturnHosts;

use crate::client::TrustedProxies;
use crate::cookies::Cookies;

/// Settings the web layer needs.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The association's name, on every page.
    pub site_name: String,
    /// Base of absolute links; its scheme decides HSTS.
    pub public_url: String,
    /// How cookies are written (`Secure`, the session's shared domain).
    pub cookies: Cookies,
    /// Where `next` may send a browser after login.
    pub return_hosts: ReturnHosts,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Time zone for dates shown to people.
    pub time_zone: jiff::tz::TimeZone,
    /// Address shown to members for help, if any.
    pub assistance_email: Option<String>,
    /// What the page for hospital IT says about our mail.
    pub mail_help: MailHelp,
    /// What the privacy notice says of who processes the data, and for how long.
    pub privacy: PrivacyNotice,
}

/// What `/confidentialite` says that depends on the deployment.
#[derive(Debug, Clone)]
pub struct PrivacyNotice {
    /// Who is responsible for the processing (`GUICHET_PRIVACY_CONTROLLER`).
    pub controller: Option<String>,
    /// The data protection officer or contact (`GUICHET_PRIVACY_CONTACT`).
    pub contact: Option<String>,
    /// The retention periods in force.
    pub retention: guichet_core::retention::Retention,
    /// Between an erasure asked for and done.
    pub erasure_delay: guichet_core::SignedDuration,
    /// Where mail leaves through (an SMTP relay is a recipient of the addresses).
    pub relay: Option<String>,
}

impl Default for PrivacyNotice {
    fn default() -> Self {
        Self {
            controller: None,
            contact: None,
            retention: guichet_core::retention::Retention::default(),
            erasure_delay: guichet_core::SignedDuration::from_hours(7 * 24),
            relay: None,
        }
    }
}

impl WebSettings {
    /// The origin browsers send with forms from our pages: the public URL's scheme, host
    /// and port (the default port left out, as browsers do).
    pub fn public_origin(&self) -> String {
        let url = self.public_url.trim_end_matches('/');
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        let authority = rest.split('/').next().unwrap_or_default().to_ascii_lowercase();
        let default_port = if scheme.eq_ignore_ascii_case("https") { ":443" } else { ":80" };
        format!("{}://{}", scheme.to_ascii_lowercase(), authority.strip_suffix(default_port).unwrap_or(&authority))
    }
}

/// Who sends guichet's mail, for `/aide/messagerie`.
#[derive(Debug, Clone, Default)]
pub struct MailHelp {
    /// The sender address.
    pub from_address: String,
    /// Its domain.
    pub from_domain: String,
    /// `(domain, selector)` when messages are DKIM-signed.
    pub dkim: Option<(String, String)>,
    /// The SMTP server messages are handed to, and its addresses (looked up at start).
    pub relay: Option<(String, Vec<String>)>,
    /// The subject lines members may receive.
    pub subjects: Vec<String>,
    /// The desk's address (`GUICHET_ASSISTANCE_EMAIL`).
    pub assistance: Option<String>,
}

/// The application's shared state.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Login.
    pub authenticator: Authenticator,
    /// Sessions.
    pub sessions: Sessions,
    /// Account management.
    pub members: Members,
    /// Forgot identifier, forgot password.
    pub recovery: Recovery,
    /// Sends the outbox; woken after anything that queues mail.
    pub postman: Postman,
    /// The assistance desk.
    pub desk: Desk,
    /// "Mon espace": members' own account.
    pub me: MySpace,
    /// Second factors: enrolment, the login's second step.
    pub second_factors: guichet_core::second_factor::SecondFactors,
    /// Security keys and passkeys; `None` when the public URL has no host name (WebAuthn
    /// needs one).
    pub passkeys: Option<guichet_core::passkeys::Passkeys>,
    /// Staff actions on accounts, with their authority.
    pub console: Console,
    /// The rights over personal data: export, erasure.
    pub privacy: guichet_core::personal_data::Privacy,
    /// Upstream identity providers (Pro Santé Connect…): none configured, no button.
    pub upstreams: guichet_core::upstream::Upstreams,
    /// Groups of members.
    pub groups: Groups,
    /// Forward auth: who may see which URL of the members' area.
    pub gate: Gate,
    /// The OpenID Connect provider.
    pub oidc: Oidc,
    /// Delivers back-channel logouts; rung after a session ends here.
    pub messenger: guichet_core::oidc::Messenger,
    /// Settings.
    pub settings: WebSettings,
    /// Set while the database holds a schema newer than this binary's: this instance
    /// answers `503` to every write until it is upgraded (or the schema is current again).
    pub writes_paused: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// Bundles the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
