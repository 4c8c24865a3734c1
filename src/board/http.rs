//! The board's page over HTTP(S): `/` (the page, [`PAGE`]), the login ([`crate::web::Gate`]), and
//! `GET /api/events`, Server-Sent Events: a `snapshot` (`{"broker": bool, "boxes": [...]}`), then a `box` event
//! at every change of a box and a `broker` event when the board's own connection to the broker changes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::{BoxShown, Fleet};
use crate::web::Gate;

/// The page (HTML, CSS and JavaScript in one file, compiled in).
pub const PAGE: &str = include_str!("page.html");

/// A change the open pages are told of.
#[derive(Debug, Clone)]
enum Change {
    Box(Box<BoxShown>),
    Broker(bool),
}

/// What the routes and the subscriber share.
pub struct Board {
    fleet: Mutex<Fleet>,
    broker: AtomicBool,
    changes: broadcast::Sender<Change>,
    gate: Arc<Gate>,
}

impl Board {
    /// The board of `fleet`, behind `gate`.
    pub fn new(fleet: Fleet, gate: Arc<Gate>) -> Arc<Board> {
        let (changes, _) = broadcast::channel(256);
        Arc::new(Board {
            fleet: Mutex::new(fleet),
            broker: AtomicBool::new(false),
            changes,
            gate,
        })
    }

    /// A message from the broker.
    pub fn on_message(&self, topic: &str, payload: &[u8]) {
        let changed = self
            .fleet
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .on_message(topic, payload);
        if let Some(b) = changed {
            let _ = self.changes.send(Change::Box(Box::new(b)));
        }
    }

    /// The board's own connection to the broker.
    pub fn broker(&self, connected: bool) {
        if self.broker.swap(connected, Ordering::AcqRel) != connected {
            let _ = self.changes.send(Change::Broker(connected));
        }
    }
}

/// The router of the page, its login included.
pub fn router(board: Arc<Board>) -> axum::Router {
    let gate = board.gate.clone();
    let app = axum::Router::new()
        .route("/", get(page))
        .route("/api/events", get(events))
        .with_state(board)
        .merge(gate.routes());
    crate::web::harden(app)
}

async fn page(State(b): State<Arc<Board>>, headers: HeaderMap) -> Response {
    match b.gate.user(&headers) {
        Some(_) => Html(PAGE).into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

async fn events(State(b): State<Arc<Board>>, headers: HeaderMap) -> Response {
    if b.gate.user(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // subscribe before the snapshot: a change between the two is sent twice (harmless), never lost
    let rx = b.changes.subscribe();
    let snapshot = serde_json::json!({
        "broker": b.broker.load(Ordering::Acquire),
        "boxes": b.fleet.lock().unwrap_or_else(|p| p.into_inner()).boxes(),
    });
    let first = Event::default()
        .event("snapshot")
        .retry(Duration::from_millis(1000))
        .json_data(&snapshot);
    let changes = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(Change::Box(x)) => Some((Event::default().event("box").json_data(&*x), rx)),
            Ok(Change::Broker(c)) => Some((Event::default().event("broker").json_data(c), rx)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some((Ok(Event::default().event("lagged").data("")), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    let stream = futures_util::stream::once(async move { first }).chain(changes);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
