//! Registered clients: the association's web applications (a CMS, Nextcloud, Moodle, a
//! forum) that sign members in through guichet.

use jiff::Timestamp;
use subtle::ConstantTimeEq as _;
use unicode_normalization::UnicodeNormalization as _;
use url::Url;

use crate::groups::GroupName;
use crate::token::{PlainToken, TokenHash};

/// A client's id: what the operator types into the application's settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// A fresh id made from the client's name (`Nextcloud du réseau` → `nextcloud-du-reseau-…`)
    /// and random characters, so that it is both readable and unguessable.
    pub fn generate(name: &str) -> Self {
        let mut slug = String::new();
        // Accents dropped (decomposed, then marks left out), the rest kept as `a-z0-9-`.
        for c in name.nfd().filter(|c| !unicode_normalization::char::is_combining_mark(*c)) {
            match c {
                'a'..='z' | '0'..='9' => slug.push(c),
                'A'..='Z' => slug.push(c.to_ascii_lowercase()),
                _ if !slug.is_empty() && !slug.ends_with('-') => slug.push('-'),
                _ => {}
            }
        }
        let slug: String = slug.trim_end_matches('-').chars().take(24).collect();
        let random = crate::token::hex(&crate::token::random_bytes::<6>());
        let slug = slug.trim_end_matches('-');
        Self(if slug.is_empty() { random } else { format!("{slug}-{random}") })
    }

    /// An id as presented or stored; `None` when it cannot be one (so that garbage never
    /// reaches the database).
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| Self(raw.to_owned()))
    }

    /// Rebuilds an id read back from storage.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// Its name, for people.
    pub name: String,
    /// The hash of its secret; `None` for a public client (PKCE then required).
    pub secret_hash: Option<TokenHash>,
    /// Where codes may be sent, compared exactly.
    pub redirect_uris: Vec<String>,
    /// Where a logout it starts may return, compared exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Only members of one of these groups may sign in to it; anyone when empty.
    pub groups: Vec<GroupName>,
    /// Where guichet POSTs a logout token when a session it signed in to ends.
    pub backchannel_logout_uri: Option<String>,
    /// What guichet's logout page loads in an invisible frame (with `iss` and `sid`).
    pub frontchannel_logout_uri: Option<String>,
    /// May hold `offline_access` refresh tokens, which outlive the guichet session.
    pub offline: bool,
    /// Admits only sessions signed in with a second factor.
    pub second_factor: bool,
    /// When it was registered.
    pub created_at: Timestamp,
}

impl Client {
    /// Whether it has no secret (a single-page or mobile application).
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// Whether `secret` is its secret.
    pub fn secret_matches(&self, secret: &str) -> bool {
        let presented = PlainToken::from_presented(secret).map(|s| s.hash());
        match (&self.secret_hash, presented) {
            (Some(stored), Some(presented)) => stored.as_str().as_bytes().ct_eq(presented.as_str().as_bytes()).into(),
            _ => false,
        }
    }

    /// Whether a member of `groups` may sign in to it.
    pub fn admits(&self, groups: &[GroupName]) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| groups.contains(g))
    }
}

/// What the operator asks to register.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Its name.
    pub name: String,
    /// Redirect URIs (at least one).
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (no secret).
    pub public: bool,
    /// Group names it is limited to.
    pub groups: Vec<String>,
    /// Back-channel logout URI.
    pub backchannel_logout_uri: Option<String>,
    /// Front-channel logout URI.
    pub frontchannel_logout_uri: Option<String>,
    /// May hold offline refresh tokens.
    pub offline: bool,
    /// Admits only sessions signed in with a second factor.
    pub second_factor: bool,
}

/// A client just registered, with its secret shown this once.
#[derive(Debug)]
pub struct Registered {
    /// The client.
    pub client: Client,
    /// Its secret (`None` for a public client): printed once, only its hash is kept.
    pub secret: Option<PlainToken>,
}

/// Why a client cannot be registered. Shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No name.
    #[error("a client needs a name (1 to 100 characters)")]
    Name,
    /// No redirect URI.
    #[error("a client needs at least one --redirect-uri")]
    NoRedirectUri,
    /// A URI that cannot be one.
    #[error("{0:?} cannot be a redirect URI: an absolute https URL without a fragment (http only on localhost)")]
    RedirectUri(String),
    /// A logout URI that cannot be one.
    #[error("{0:?} cannot be a logout URI: an absolute https URL without a fragment (http only on localhost)")]
    LogoutUri(String),
    /// A group that does not exist.
    #[error("no group is named {0:?} (guichet group list shows them)")]
    Group(String),
    /// No client has this id.
    #[error("no client has the id {0:?}")]
    Unknown(String),
    /// Only administrators see and manage the applications.
    #[error("{}", crate::catalogue::CLIENT_ERROR_NOT_ADMIN)]
    NotAdmin,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
}

/// Checks a redirect URI as registered: absolute, `https` (or `http` on loopback, for
/// trying things out), no fragment, no credentials.
pub fn check_redirect_uri(raw: &str) -> Result<String, ClientError> {
    let bad = || ClientError::RedirectUri(raw.to_owned());
    let url = Url::parse(raw.trim()).map_err(|_| bad())?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad());
    }
    Ok(raw.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_readable_and_random() {
        let id = ClientId::generate("Nextcloud du Réseau");
        assert!(id.as_str().starts_with("nextcloud-du-reseau-"), "{id}");
        assert_ne!(id, ClientId::generate("Nextcloud du Réseau"));
        assert!(ClientId::parse(id.as_str()).is_some());
        assert!(ClientId::parse("Nope space").is_none());
        assert!(ClientId::generate("!!!").as_str().len() == 12);
    }

    #[test]
    fn redirect_uris_are_https_or_loopback() {
        assert!(check_redirect_uri("https://cloud.example.org/apps/oidc/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8000/cb").is_ok());
        for bad in [
            "http://cloud.example.org/cb",
            "https://x.example/cb#f",
            "/cb",
            "javascript:alert(1)",
            "https://u:p@x.example/",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
