//! `guichet group …`.

use std::sync::Arc;

use guichet_core::clock::Clock;

use crate::app::Application;
use crate::cli::GroupCommand;
use crate::config::Settings;

/// Runs a `group` subcommand.
pub async fn run(command: GroupCommand, settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let app = Application::build(settings, clock).await?;
    let groups = &app.state.groups;
    let result = match command {
        GroupCommand::Add { name, description } => groups.add(&name, &description).await.map(|group| {
            say!("created group {}", group.name);
        }),
        GroupCommand::List => groups.list().await.map_err(Into::into).map(|list| {
            for group in list {
                say!("{:<24} {:>5} member(s)  {}", group.name, group.members, group.description);
            }
        }),
        GroupCommand::Remove { name } => groups.remove(&name).await.map(|()| {
            say!("removed group {}", name.trim().to_lowercase());
        }),
    };
    app.store.close().await;
    Ok(result?)
}
