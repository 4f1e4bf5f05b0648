//! `guichet client …`: the applications that sign members in with OpenID Connect.

use std::sync::Arc;

use guichet_core::clock::Clock;
use guichet_core::oidc::NewClient;

use crate::app::Application;
use crate::cli::ClientCommand;
use crate::config::Settings;

/// Runs a `client` subcommand.
pub async fn run(command: ClientCommand, settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let app = Application::build(settings, clock).await?;
    let oidc = &app.state.oidc;
    let result = match command {
        ClientCommand::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            groups,
            backchannel_logout_uri,
            frontchannel_logout_uri,
            offline,
            second_factor,
        } => {
            let new = NewClient {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                public,
                groups,
                backchannel_logout_uri,
                frontchannel_logout_uri,
                offline,
                second_factor,
            };
            oidc.register(new).await.map(|registered| {
                let client = &registered.client;
                say!("registered {}", client.name);
                say!("issuer:        {}", oidc.issuer().as_str());
                say!("client_id:     {}", client.id);
                match &registered.secret {
                    Some(secret) => {
                        say!("client_secret: {}", secret.expose());
                        say!("(shown this once: only a hash is kept)");
                    }
                    None => say!("public client: no secret, PKCE (S256) required"),
                }
            })
        }
        ClientCommand::List => oidc.clients().await.map_err(Into::into).map(|clients| {
            for client in clients {
                let kind = [
                    Some(if client.is_public() { "public" } else { "confidential" }),
                    client.offline.then_some("offline"),
                    client.second_factor.then_some("second-factor"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(",");
                let groups = client.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(",");
                let groups = if groups.is_empty() { "every member".to_owned() } else { format!("groups {groups}") };
                say!(
                    "{:<36} {:<12} {:<24} {}  {}",
                    client.id,
                    kind,
                    client.name,
                    groups,
                    client.redirect_uris.join(" ")
                );
            }
        }),
        ClientCommand::Remove { client_id } => oidc.remove(&client_id).await.map(|()| {
            say!("removed client {}", client_id.trim());
        }),
        ClientCommand::RotateKey => {
            let rotated = oidc.rotate_key().await?;
            let at = |t: guichet_core::Timestamp| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
            say!("new signing key {}: published now in /oidc/jwks", rotated.kid);
            say!("it signs from {} (every application has seen it by then)", at(rotated.signs_from));
            say!("the key it replaces stays published until {}", at(rotated.previous_until));
            Ok(())
        }
    };
    app.store.close().await;
    Ok(result?)
}
