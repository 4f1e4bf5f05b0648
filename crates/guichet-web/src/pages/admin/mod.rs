//! The staff console under `/admin`. Every route sits behind `require_staff` (a layer:
//! members get `403`, anonymous visitors `/login`); handlers also take the `Staff` or
//! `Admin` extractor. [`ROUTES`] lists every route, so a test can walk them all.

mod clients;
mod create;
mod dashboard;
mod members;
mod requests;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;
use members::Click;

/// Declares the console's routes once, for the router and for [`ROUTES`].
macro_rules! console {
    ($($method:ident $path:literal => $handler:expr),* $(,)?) => {
        /// The console's router (nested under `/admin`).
        pub fn routes() -> Router<AppState> {
            Router::new()$(.route($path, $method($handler)))*
        }

        /// Every console route: method and path under `/admin`.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];
    };
}

console! {
    get "/" => dashboard::show,
    get "/members" => members::list,
    get "/members/new" => create::new_account,
    post "/members/new" => create::create_account,
    get "/groups" => create::groups,
    post "/groups" => create::create_group,
    get "/members/{id}" => members::show,
    post "/members/{id}/unlock" => |s, st, c, p| members::click(s, st, c, p, Click::Unlock),
    post "/members/{id}/send-identifier" => |s, st, c, p| members::click(s, st, c, p, Click::SendIdentifier),
    post "/members/{id}/send-reset-code" => |s, st, c, p| members::click(s, st, c, p, Click::SendResetCode),
    post "/members/{id}/temporary-password" => |s, st, c, p| members::click(s, st, c, p, Click::TemporaryPassword),
    post "/members/{id}/temporary-password/show" => members::hand_temporary_password,
    post "/members/{id}/details" => members::details,
    post "/members/{id}/disable" => members::disable,
    post "/members/{id}/enable" => |s, st, c, p| members::click(s, st, c, p, Click::Enable),
    post "/members/{id}/role" => members::role,
    post "/members/{id}/end-sessions" => members::end_sessions,
    post "/members/{id}/unlink-upstream" => members::unlink_upstream,
    post "/members/{id}/reset-second-factor" => members::reset_second_factor,
    post "/members/{id}/export" => crate::pages::privacy::staff_export,
    post "/members/{id}/erase" => crate::pages::privacy::staff_erase,
    post "/members/{id}/join" => |s, st, c, p, f| members::change_group(s, st, c, p, f, true),
    post "/members/{id}/leave" => |s, st, c, p, f| members::change_group(s, st, c, p, f, false),
    get "/requests" => requests::list,
    get "/requests/{id}" => requests::show,
    post "/requests/{id}/state" => requests::state,
    post "/requests/{id}/note" => requests::note,
    post "/requests/{id}/assign" => requests::assign,
    post "/requests/{id}/link" => requests::link,
    post "/requests/{id}/slots" => requests::propose_slots,
    post "/requests/{id}/slots/{slot}/agreed" => requests::agreed_by_phone,
    get "/clients" => clients::list,
}
