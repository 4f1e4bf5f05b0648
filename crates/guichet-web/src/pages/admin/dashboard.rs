//! The console's front page: open requests, upcoming calls, locked accounts, and a
//! chart of failed logins and lockouts per day over the last 30 days, drawn as SVG on
//! the server (no script).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use guichet_core::audit::AuditKind;
use guichet_core::french;
use guichet_core::ports::AccountFilter;
use jiff::SignedDuration;

use super::requests::RequestLine;
use crate::error::WebError;
use crate::pages::{Layout, Staff, render};
use crate::state::AppState;

const DAYS: i64 = 30;
const DAY_MS: i64 = 86_400_000;

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
    total_failed: u64,
    total_locked: u64,
}

pub async fn show(State(state): State<AppState>, staff: Staff) -> Result<Response, WebError> {
    let zone = &state.settings.time_zone;
    let now = state.clock.now();
    let open: Vec<RequestLine> =
        state.store.list_requests(true, 20).await?.iter().map(|r| RequestLine::of(r, zone)).collect();
    let calls = state
        .store
        .upcoming_calls(now, 20)
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
        .store
        .list_accounts(AccountFilter { locked_at: Some(now) })
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
    let today = now.as_millisecond().div_euclid(DAY_MS);
    let since = now.saturating_sub(SignedDuration::from_hours(24 * DAYS)).unwrap_or(now);
    let counts = state.store.daily_counts(&[AuditKind::LoginFailed, AuditKind::AccountLocked], since).await?;
    let per_day = |kind: AuditKind, day: i64| {
        counts.iter().filter(|(d, k, _)| *d == day && *k == kind).map(|(_, _, n)| *n).sum::<u64>()
    };
    let days: Vec<(i64, u64, u64)> = (0..DAYS)
        .map(|i| today - DAYS + 1 + i)
        .map(|d| (d, per_day(AuditKind::LoginFailed, d), per_day(AuditKind::AccountLocked, d)))
        .collect();
    let max = days.iter().map(|(_, f, l)| (*f).max(*l)).max().unwrap_or(0).max(1);
    let height = 120_i64;
    let scale = |n: u64| i64::try_from(n).unwrap_or(0) * height / i64::try_from(max).unwrap_or(1);
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, (day, failed, locked))| {
            let x = i64::try_from(i).unwrap_or(0) * 20 + 40;
            let date = jiff::Timestamp::from_millisecond(day * DAY_MS)
                .map(|t| t.to_zoned(zone.clone()).strftime("%d/%m").to_string());
            Bar {
                x,
                failed_y: 10 + height - scale(*failed),
                failed_height: scale(*failed),
                locked_y: 10 + height - scale(*locked),
                locked_height: scale(*locked),
                label: format!("{} : {failed} échec(s), {locked} suspension(s)", date.unwrap_or_default()),
            }
        })
        .collect();
    let page = DashboardPage {
        layout: staff.layout,
        total_failed: days.iter().map(|(_, f, _)| f).sum(),
        total_locked: days.iter().map(|(_, _, l)| l).sum(),
        open,
        calls,
        locked,
        bars,
        max,
    };
    render(StatusCode::OK, &page)
}
