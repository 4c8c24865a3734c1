//! The board's page over HTTP(S): `/` (the page, [`PAGE`]), the login ([`crate::web::Gate`]), and
//! `GET /api/events`, Server-Sent Events: a `snapshot` (`{"broker": bool, "boxes": [...]}`), then a `box` event
//! at every change of a box and a `broker` event when the board's own connection to the broker changes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
    b.gate.page(&headers, PAGE)
}

async fn events(State(b): State<Arc<Board>>, headers: HeaderMap) -> Response {
    if b.gate.user(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let rx = b.changes.subscribe();
    let snapshot = serde_json::json!({
        "broker": b.broker.load(Ordering::Acquire),
        "boxes": b.fleet.lock().unwrap_or_else(|p| p.into_inner()).boxes(),
    });
    crate::web::live_events(&snapshot, rx, |change| match change {
        Change::Box(x) => Event::default().event("box").json_data(&*x),
        Change::Broker(c) => Event::default().event("broker").json_data(c),
    })
}
