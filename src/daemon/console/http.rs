//! The console page over HTTP(S): axum routes, the login, the Server-Sent Events stream and the LN read entry.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page ([`PAGE`]); to `/login` without a session |
//! | `GET /login`, `POST /login`, `POST /logout` | the login ([`crate::web::Gate`]) |
//! | `GET /api/info` | the box, its bundle and the nomogram's axes (what the page draws the bars against) |
//! | `GET /api/events` | SSE: a `snapshot` of the day's cards, then a `card` event at every change |
//! | `POST /api/ln-read` | `{"study_key", "mri_ln_status", "factors"}`: an MRI LN read and/or other reported factors, handed to the core as `cmd/ln-status` is |
//!
//! Every `/api` route needs the session; the POSTs also need the `x-alnrisk-console` header (a page of another
//! origin cannot send it without the browser asking first), besides the SameSite=Strict cookie.

use std::sync::{Arc, Mutex};

use crate::web::Gate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::{Card, Cards, ConsoleNote};
use crate::daemon::payload::{LnStatusCommand, StudyKey};
use crate::web::login::unix_now;

/// The page (HTML, CSS and JavaScript in one file, compiled in).
pub const PAGE: &str = include_str!("page.html");
/// The header a POST must carry.
pub const POST_HEADER: &str = "x-alnrisk-console";

/// Hands an LN read entered on the page to the core; `false` when the daemon is stopping.
pub type LnSink = Box<dyn Fn(LnStatusCommand) -> bool + Send + Sync>;

/// What the routes share.
pub struct Console {
    cards: Mutex<Cards>,
    changes: broadcast::Sender<Arc<Card>>,
    gate: Arc<Gate>,
    info: serde_json::Value,
    ln_sink: LnSink,
}

impl Console {
    /// The console over `cards`, behind `gate`; `info` is what `/api/info` says of the box.
    pub fn new(cards: Cards, gate: Arc<Gate>, info: serde_json::Value, ln_sink: LnSink) -> Arc<Console> {
        let (changes, _) = broadcast::channel(256);
        Arc::new(Console {
            cards: Mutex::new(cards),
            changes,
            gate,
            info,
            ln_sink,
        })
    }

    /// Apply the core's notes as they come, pushing every changed card to the open pages. Ends with the
    /// channel.
    pub async fn follow(self: Arc<Console>, mut notes: mpsc::Receiver<ConsoleNote>) {
        while let Some(note) = notes.recv().await {
            let changed = {
                let mut cards = self.cards.lock().unwrap_or_else(|p| p.into_inner());
                cards.apply(note, (crate::time::utc_now(), unix_now()))
            };
            if let Some(card) = changed {
                // no page open: nobody to tell
                let _ = self.changes.send(Arc::new(card));
            }
        }
    }

    fn user(&self, headers: &HeaderMap) -> Option<String> {
        self.gate.user(headers)
    }
}

/// The router of the page, its login included.
pub fn router(console: Arc<Console>) -> axum::Router {
    let gate = console.gate.clone();
    let app = axum::Router::new()
        .route("/", get(page))
        .route("/api/info", get(info))
        .route("/api/events", get(events))
        .route("/api/ln-read", post(ln_read))
        .with_state(console)
        .merge(gate.routes());
    crate::web::harden(app)
}

async fn page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    c.gate.page(&headers, PAGE)
}

async fn info(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(user) = c.user(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let mut info = c.info.clone();
    info["user"] = serde_json::Value::String(user);
    axum::Json(info).into_response()
}

async fn events(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if c.user(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let rx = c.changes.subscribe();
    let snapshot = {
        let cards = c.cards.lock().unwrap_or_else(|p| p.into_inner());
        cards.snapshot(unix_now())
    };
    crate::web::live_events(&snapshot, rx, |card| Event::default().event("card").json_data(&*card))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LnReadEntry {
    study_key: String,
    #[serde(default)]
    mri_ln_status: Option<String>,
    /// Other reported factors by cohort column (the core checks them against the nomogram).
    #[serde(default)]
    factors: std::collections::BTreeMap<String, serde_json::Value>,
}

async fn ln_read(State(c): State<Arc<Console>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(user) = c.user(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if !headers.contains_key(POST_HEADER) {
        return (StatusCode::FORBIDDEN, "missing the console's header\n").into_response();
    }
    let Ok(entry) = serde_json::from_slice::<LnReadEntry>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected {\"study_key\", \"mri_ln_status\" and/or \"factors\"}\n",
        )
            .into_response();
    };
    let read = match entry.mri_ln_status.as_deref() {
        Some("positive") => Some(crate::model::LnRead::Positive),
        Some("negative") => Some(crate::model::LnRead::Negative),
        None if !entry.factors.is_empty() => None,
        _ => return (StatusCode::BAD_REQUEST, "mri_ln_status is positive or negative\n").into_response(),
    };
    if StudyKey::parse(&entry.study_key).is_none() {
        return (StatusCode::BAD_REQUEST, "not a study key\n").into_response();
    }
    tracing::info!(user = %user, factors = entry.factors.len(), "console: an MRI LN read or a factor was entered");
    let cmd = LnStatusCommand {
        study_key: Some(entry.study_key),
        study_instance_uid: None,
        mri_ln_status: read,
        factors: entry.factors,
    };
    if (c.ln_sink)(cmd) {
        StatusCode::ACCEPTED.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response()
    }
}
