//! The applications that sign members in with OpenID Connect: the list, for
//! administrators (registering one stays on the command line, where its secret is
//! printed once).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use guichet_core::french;
use guichet_core::oidc::{ClientError, LogoutState};

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
    /// How it hears of logouts, and whether it keeps members offline.
    logout: Vec<String>,
    created: String,
}

/// A back-channel logout as the page shows it.
struct Told {
    ended: String,
    application: String,
    account: i64,
    identifier: String,
    state: String,
    answer: String,
}

#[derive(Template)]
#[template(path = "admin_clients.html")]
struct ClientsPage {
    layout: Layout,
    issuer: String,
    clients: Vec<Line>,
    logouts: Vec<Told>,
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
    let names: std::collections::HashMap<String, String> =
        clients.iter().map(|c| (c.id.to_string(), c.name.clone())).collect();
    let logouts = state.messenger.log_for(&staff.actor, 50).await?.unwrap_or_default();
    let logouts = logouts
        .into_iter()
        .map(|l| Told {
            ended: french::date_time(l.ended_at, zone),
            application: names.get(l.client.as_str()).cloned().unwrap_or_else(|| l.client.to_string()),
            account: l.account.get(),
            identifier: l.identifier.unwrap_or_default(),
            state: match l.state {
                LogoutState::Delivered => "transmise".to_owned(),
                LogoutState::Pending if l.attempts == 0 => "à transmettre".to_owned(),
                LogoutState::Pending => {
                    format!("en attente, {} essai{}", l.attempts, if l.attempts > 1 { "s" } else { "" })
                }
                LogoutState::Failed => "abandonnée".to_owned(),
            },
            answer: l.last_answer.unwrap_or_default(),
        })
        .collect();
    let clients = clients
        .into_iter()
        .map(|c| Line {
            kind: if c.is_public() { "publique (PKCE)" } else { "confidentielle (secret)" },
            groups: if c.groups.is_empty() {
                "tous les membres".to_owned()
            } else {
                c.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ")
            },
            logout: [
                c.backchannel_logout_uri.as_ref().map(|u| format!("canal arrière : {u}")),
                c.frontchannel_logout_uri.as_ref().map(|u| format!("navigateur : {u}")),
                c.offline.then(|| "garde l'accès hors session (offline_access)".to_owned()),
                c.second_factor.then(|| "demande un second facteur".to_owned()),
            ]
            .into_iter()
            .flatten()
            .collect(),
            created: french::date_time(c.created_at, zone),
            name: c.name,
            id: c.id.to_string(),
            redirect_uris: c.redirect_uris,
        })
        .collect();
    let issuer = state.oidc.issuer().as_str().to_owned();
    render(StatusCode::OK, &ClientsPage { layout: staff.layout, issuer, clients, logouts })
}
