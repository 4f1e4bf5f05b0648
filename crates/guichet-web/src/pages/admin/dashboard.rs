//! The console's front page: open requests, upcoming calls, locked accounts, and a
//! chart of failed logins and lockouts per day over the last 30 days, drawn as SVG on
//! the server (no script).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use guichet_core::french;

use super::requests::RequestLine;
use crate::error::WebError;
use crate::pages::{Layout, Staff, render};
use crate::state::AppState;

const DAYS: i64 = 30;

/// One day's bars.
pub struct Bar {
    x: i64,
    failed_y: i64,
    failed_height: i64,
    locked_y: i64,
    locked_height: i64,
    label: String,
}

pub struct CallLine {
    when: String,
    reference: String,
    request_id: i64,
    phone: String,
}

#[derive(Template)]
#[template(path = "admin_dashboard.html")]
struct DashboardPage {
    layout: Layout,
    open: Vec<RequestLine>,
    calls: Vec<CallLine>,
    locked: Vec<(i64, String, String)>,
    bars: Vec<Bar>,
    max: u64,
    total_failed: String,
    total_locked: String,
}

pub async fn show(State(state): State<AppState>, staff: Staff) -> Result<Response, WebError> {
    let zone = &state.settings.time_zone;
    let open: Vec<RequestLine> = state.desk.queue(true, 20).await?.iter().map(|r| RequestLine::of(r, zone)).collect();
    let calls = state
        .desk
        .upcoming_calls(20)
        .await?
        .into_iter()
        .map(|(slot, request)| CallLine {
            when: french::slot(slot.starts_at, slot.ends_at, zone),
            reference: request.reference,
            request_id: request.id.get(),
            phone: request.phone,
        })
        .collect();
    let locked = state
        .console
        .locked_accounts()
        .await?
        .into_iter()
        .map(|a| {
            (
                a.id.get(),
                a.identifier.to_string(),
                a.locked_until.map(|u| french::date_time(u, zone)).unwrap_or_default(),
            )
        })
        .collect();
    let days = state.console.daily_counts(DAYS).await?;
    let max = days.iter().map(|d| d.failures.max(d.locks)).max().unwrap_or(0).max(1);
    let height = 120_i64;
    let scale = |n: u64| i64::try_from(n).unwrap_or(0) * height / i64::try_from(max).unwrap_or(1);
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let x = i64::try_from(i).unwrap_or(0) * 20 + 40;
            let date = day.day.to_zoned_datetime(zone.clone()).strftime("%d/%m").to_string();
            Bar {
                x,
                failed_y: 10 + height - scale(day.failures),
                failed_height: scale(day.failures),
                locked_y: 10 + height - scale(day.locks),
                locked_height: scale(day.locks),
                label: format!(
                    "{date} : {}, {}",
                    french::count(to_usize(day.failures), "échec", "échecs"),
                    french::count(to_usize(day.locks), "suspension", "suspensions")
                ),
            }
        })
        .collect();
    let page = DashboardPage {
        layout: staff.layout,
        total_failed: french::count(to_usize(days.iter().map(|d| d.failures).sum()), "échec", "échecs"),
        total_locked: french::count(to_usize(days.iter().map(|d| d.locks).sum()), "suspension", "suspensions"),
        open,
        calls,
        locked,
        bars,
        max,
    };
    render(StatusCode::OK, &page)
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
