//! A signed-in form sent after its session ended (left open past the idle time): the
//! visitor is told plainly to log in again, with a login form that leads back to the
//! page of the form, and what they had typed is shown so that nothing is lost.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};

use crate::pages::{Layout, render};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "session_expired.html")]
struct ExpiredPage {
    layout: Layout,
    next: String,
    idle: String,
    typed: Vec<(&'static str, String)>,
}

/// The page that shows the form `path` was sent from: the form's own page where it has
/// one, else the page it sits on.
fn form_page(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["me", "password"] | ["me", "recovery-email", "confirm"] => path.to_owned(),
        ["me", ..] => "/me".to_owned(),
        ["admin", kind @ ("members" | "requests"), id, ..] if id.bytes().all(|b| b.is_ascii_digit()) => {
            format!("/admin/{kind}/{id}")
        }
        ["admin", ..] => "/admin".to_owned(),
        _ => "/me".to_owned(),
    }
}

/// What a form field is called on the pages.
fn label(field: &str) -> &'static str {
    match field {
        "email" => "Adresse électronique",
        "name" => "Nom",
        "code" => "Code",
        "body" => "Note",
        "message" => "Message",
        "phone" => "Téléphone",
        "identifier" => "Identifiant",
        "role" => "Rôle",
        "group" => "Groupe",
        "state" => "État",
        _ => "Champ",
    }
}

/// The answer (`401`), with the anonymous form token `csrf_token`.
pub fn page(state: &AppState, csrf_token: &str, path: &str, typed: Vec<(String, String)>) -> Response {
    let layout = Layout { csrf_token: csrf_token.to_owned(), ..Layout::anonymous(state) };
    let typed = typed
        .into_iter()
        .filter(|(key, value)| {
            !value.trim().is_empty() && !matches!(key.as_str(), "next" | "website" | "to" | "minutes")
        })
        .map(|(key, value)| (label(&key), value.chars().take(5000).collect()))
        .collect();
    let page = ExpiredPage {
        layout,
        next: form_page(path),
        idle: guichet_core::french::duration(state.sessions.policy().idle),
        typed,
    };
    match render(StatusCode::UNAUTHORIZED, &page) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_leads_back_to_the_forms_page() {
        assert_eq!(form_page("/me/password"), "/me/password");
        assert_eq!(form_page("/me/recovery-email"), "/me");
        assert_eq!(form_page("/me/sessions/end-others"), "/me");
        assert_eq!(form_page("/admin/members/12/details"), "/admin/members/12");
        assert_eq!(form_page("/admin/requests/3/note"), "/admin/requests/3");
        assert_eq!(form_page("/admin/members/x/details"), "/admin");
        assert_eq!(form_page("/logout"), "/me");
    }
}
