//! The applications that sign members in with OpenID Connect: the list, for
//! administrators (registering one stays on the command line, where its secret is
//! printed once).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use guichet_core::french;
use guichet_core::oidc::ClientError;

use crate::error::{ErrorPage, WebError};
use crate::pages::{Layout, Staff, render};
use crate::state::AppState;

/// A client as the page shows it.
struct Line {
    name: String,
    id: String,
    kind: &'static str,
    groups: String,
    redirect_uris: Vec<String>,
    created: String,
}

#[derive(Template)]
#[template(path = "admin_clients.html")]
struct ClientsPage {
    layout: Layout,
    issuer: String,
    clients: Vec<Line>,
}

pub async fn list(State(state): State<AppState>, staff: Staff) -> Result<Response, WebError> {
    let clients = match state.oidc.clients_for(&staff.actor).await {
        Ok(clients) => clients,
        Err(ClientError::NotAdmin) => {
            return Err(WebError::Page(ErrorPage::new(
                StatusCode::FORBIDDEN,
                "Accès réservé",
                "La liste des applications est réservée aux administrateurs.",
            )));
        }
        Err(ClientError::Store(error)) => return Err(error.into()),
        Err(_) => return Err(WebError::Internal("listing clients")),
    };
    let zone = &state.settings.time_zone;
    let clients = clients
        .into_iter()
        .map(|c| Line {
            kind: if c.is_public() { "publique (PKCE)" } else { "confidentielle (secret)" },
            groups: if c.groups.is_empty() {
                "tous les membres".to_owned()
            } else {
                c.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ")
            },
            created: french::date_time(c.created_at, zone),
            name: c.name,
            id: c.id.to_string(),
            redirect_uris: c.redirect_uris,
        })
        .collect();
    let issuer = state.oidc.issuer().as_str().to_owned();
    render(StatusCode::OK, &ClientsPage { layout: staff.layout, issuer, clients })
}
