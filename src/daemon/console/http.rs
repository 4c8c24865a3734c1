//! The console page over HTTP(S): axum routes, the login, the Server-Sent Events stream and the LN read entry.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page ([`PAGE`]); to `/login` without a session |
//! | `GET /login`, `POST /login` | the login form; a session cookie ([`crate::web::login`]) on success |
//! | `POST /logout` | ends the session |
//! | `GET /api/info` | the box, its bundle and the nomogram's axes (what the page draws the bars against) |
//! | `GET /api/events` | SSE: a `snapshot` of the day's cards, then a `card` event at every change |
//! | `POST /api/ln-read` | `{"study_key", "mri_ln_status"}`: an MRI LN read, handed to the core as `cmd/ln-status` is |
//!
//! Every `/api` route needs the session; the POSTs also need the `x-alnrisk-console` header (a page of another
//! origin cannot send it without the browser asking first), besides the SameSite=Strict cookie.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::{Card, Cards, ConsoleNote};
use crate::daemon::payload::{LnStatusCommand, StudyKey};
use crate::web::login::{PasswordFile, Sessions, unix_now};

/// The page (HTML, CSS and JavaScript in one file, compiled in).
pub const PAGE: &str = include_str!("page.html");
/// The login form.
pub const LOGIN_PAGE: &str = include_str!("login.html");

/// The header a POST must carry.
pub const POST_HEADER: &str = "x-alnrisk-console";

/// Hands an LN read entered on the page to the core; `false` when the daemon is stopping.
pub type LnSink = Box<dyn Fn(LnStatusCommand) -> bool + Send + Sync>;

/// What the routes share.
pub struct Console {
    cards: Mutex<Cards>,
    changes: broadcast::Sender<Arc<Card>>,
    sessions: Sessions,
    passwords: PasswordFile,
    info: serde_json::Value,
    ln_sink: LnSink,
    secure: bool,
}

impl Console {
    /// The console over `cards`, logging in against `passwords` with `sessions`; `info` is what `/api/info`
    /// says of the box; `secure` when it is served over TLS.
    pub fn new(
        cards: Cards,
        sessions: Sessions,
        passwords: PasswordFile,
        info: serde_json::Value,
        ln_sink: LnSink,
        secure: bool,
    ) -> Arc<Console> {
        let (changes, _) = broadcast::channel(256);
        Arc::new(Console {
            cards: Mutex::new(cards),
            changes,
            sessions,
            passwords,
            info,
            ln_sink,
            secure,
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
        let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        self.sessions.user_of(cookie, unix_now())
    }
}

/// The router of the page.
pub fn router(console: Arc<Console>) -> axum::Router {
    let headers = |mut r: Response| {
        for (k, v) in crate::web::SECURITY_HEADERS {
            if let Ok(v) = header::HeaderValue::from_str(v) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    };
    axum::Router::new()
        .route("/", get(page))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/api/info", get(info))
        .route("/api/events", get(events))
        .route("/api/ln-read", post(ln_read))
        .layer(axum::middleware::map_response(
            move |r: Response| async move { headers(r) },
        ))
        .with_state(console)
}

async fn page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    match c.user(&headers) {
        Some(_) => Html(PAGE).into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

async fn login_form() -> Html<String> {
    Html(LOGIN_PAGE.replace("{{message}}", ""))
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(State(c): State<Arc<Console>>, axum::Form(form): axum::Form<LoginForm>) -> Response {
    let checker = c.clone();
    let user = form.user.clone();
    let ok = tokio::task::spawn_blocking(move || checker.passwords.verify(&form.user, &form.password))
        .await
        .unwrap_or(false);
    if ok {
        tracing::info!(user = %user, "console: logged in");
        let cookie = c.sessions.set_cookie(&user, unix_now(), c.secure);
        ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
    } else {
        tracing::warn!("console: a login was refused");
        // one try a second per connection
        tokio::time::sleep(Duration::from_secs(1)).await;
        let body = LOGIN_PAGE.replace(
            "{{message}}",
            "<p class=\"refused\" role=\"alert\">Wrong user name or password.</p>",
        );
        (StatusCode::UNAUTHORIZED, Html(body)).into_response()
    }
}

async fn logout(State(c): State<Arc<Console>>) -> Response {
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        crate::web::login::COOKIE,
        if c.secure { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
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
    // subscribe before the snapshot: a change between the two is sent twice (harmless), never lost
    let rx = c.changes.subscribe();
    let snapshot = {
        let cards = c.cards.lock().unwrap_or_else(|p| p.into_inner());
        cards.snapshot(unix_now())
    };
    let first = Event::default()
        .event("snapshot")
        .retry(Duration::from_millis(1000))
        .json_data(&snapshot);
    let changes = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(card) => Some((Event::default().event("card").json_data(&*card), rx)),
            // the page fell behind: it reconnects and takes a fresh snapshot
            Err(broadcast::error::RecvError::Lagged(_)) => Some((Ok(Event::default().event("lagged").data("")), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    let stream = futures_util::stream::once(async move { first }).chain(changes);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LnReadEntry {
    study_key: String,
    mri_ln_status: String,
}

async fn ln_read(State(c): State<Arc<Console>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(user) = c.user(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if !headers.contains_key(POST_HEADER) {
        return (StatusCode::FORBIDDEN, "missing the console's header\n").into_response();
    }
    let Ok(entry) = serde_json::from_slice::<LnReadEntry>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected {\"study_key\", \"mri_ln_status\"}\n").into_response();
    };
    let read = match entry.mri_ln_status.as_str() {
        "positive" => crate::model::LnRead::Positive,
        "negative" => crate::model::LnRead::Negative,
        _ => return (StatusCode::BAD_REQUEST, "mri_ln_status is positive or negative\n").into_response(),
    };
    if StudyKey::parse(&entry.study_key).is_none() {
        return (StatusCode::BAD_REQUEST, "not a study key\n").into_response();
    }
    tracing::info!(user = %user, "console: an MRI LN read was entered");
    let cmd = LnStatusCommand {
        study_key: Some(entry.study_key),
        study_instance_uid: None,
        mri_ln_status: Some(read),
    };
    if (c.ln_sink)(cmd) {
        StatusCode::ACCEPTED.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response()
    }
}
