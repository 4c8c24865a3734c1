//! What the pages alnrisk serves have in common: the login ([`login`], and its routes: [`Gate`]), HTTPS with the
//! site's certificate ([`TlsListener`], [`serve`]), and the headers every answer carries ([`harden`]). The console
//! page (`alnrisk serve`, [`crate::daemon::console`]) and the department board (`alnrisk board`,
//! [`crate::board`]) are built on it.
//!
//! Every asset is compiled into the binary: nothing is fetched from a CDN, and nothing needs Node at run time.

pub mod login;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::daemon::config::ServerTlsConfig;
use crate::error::{Error, Result};

/// Headers on every page and API answer: no caching of patient data, no framing, no guessing of types, scripts
/// and styles only from the page itself (the page's own inline ones, hashed by nothing: it has no other origin).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
    ),
];

/// The login form (`{{title}}` and `{{message}}` filled in).
pub const LOGIN_PAGE: &str = include_str!("login.html");

/// Who may pass: the password file, the sessions it grants, and whether the page is served over TLS (the cookie
/// is then `Secure`).
pub struct Gate {
    /// The title on the login form.
    pub title: &'static str,
    /// The password file.
    pub passwords: login::PasswordFile,
    /// The sessions.
    pub sessions: login::Sessions,
    /// Served over TLS.
    pub secure: bool,
}

impl Gate {
    /// The user a request's session cookie names, if it is valid now.
    pub fn user(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        let cookie = headers.get(axum::http::header::COOKIE).and_then(|v| v.to_str().ok());
        self.sessions.user_of(cookie, login::unix_now())
    }

    /// `html` for a request with a valid session, else a redirect to the login form.
    pub fn page(&self, headers: &axum::http::HeaderMap, html: &'static str) -> axum::response::Response {
        use axum::response::{Html, IntoResponse, Redirect};
        match self.user(headers) {
            Some(_) => Html(html).into_response(),
            None => Redirect::to("/login").into_response(),
        }
    }

    /// `GET /login` (the form), `POST /login` (a session cookie and a redirect to `/`, or the form again with
    /// 401 after a second), `POST /logout`.
    pub fn routes(self: Arc<Gate>) -> axum::Router {
        use axum::routing::{get, post};
        axum::Router::new()
            .route("/login", get(login_form).post(log_in))
            .route("/logout", post(log_out))
            .with_state(self)
    }
}

fn login_page(gate: &Gate, message: &str) -> String {
    LOGIN_PAGE
        .replace("{{title}}", gate.title)
        .replace("{{message}}", message)
}

async fn login_form(axum::extract::State(gate): axum::extract::State<Arc<Gate>>) -> axum::response::Html<String> {
    axum::response::Html(login_page(&gate, ""))
}

/// The login form's fields.
#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn log_in(
    axum::extract::State(gate): axum::extract::State<Arc<Gate>>,
    axum::Form(form): axum::Form<LoginForm>,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::{Html, IntoResponse, Redirect};
    let checker = gate.clone();
    let user = form.user.clone();
    let ok = tokio::task::spawn_blocking(move || checker.passwords.verify(&form.user, &form.password))
        .await
        .unwrap_or(false);
    if ok {
        tracing::info!(user = %user, page = gate.title, "logged in");
        let cookie = gate.sessions.set_cookie(&user, login::unix_now(), gate.secure);
        ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
    } else {
        tracing::warn!(page = gate.title, "a login was refused");
        // one try a second per connection
        tokio::time::sleep(Duration::from_secs(1)).await;
        let body = login_page(
            &gate,
            "<p class=\"refused\" role=\"alert\">Wrong user name or password.</p>",
        );
        (StatusCode::UNAUTHORIZED, Html(body)).into_response()
    }
}

async fn log_out(axum::extract::State(gate): axum::extract::State<Arc<Gate>>) -> axum::response::Response {
    use axum::response::{IntoResponse, Redirect};
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        login::COOKIE,
        if gate.secure { "; Secure" } else { "" }
    );
    ([(axum::http::header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

/// A page's live stream (Server-Sent Events): a `snapshot` event (telling the browser to retry after a second),
/// then `event(change)` for every change `changes` receives, and `lagged` when the page fell behind (it reconnects
/// and takes a fresh snapshot). Subscribe `changes` before taking the snapshot: a change between the two is then
/// sent twice (harmless), never lost.
pub fn live_events<T: Clone + Send + 'static>(
    snapshot: &impl serde::Serialize,
    changes: tokio::sync::broadcast::Receiver<T>,
    event: fn(T) -> std::result::Result<axum::response::sse::Event, axum::Error>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    use tokio::sync::broadcast::error::RecvError;
    let first = Event::default()
        .event("snapshot")
        .retry(Duration::from_millis(1000))
        .json_data(snapshot);
    let rest = futures_util::stream::unfold(changes, move |mut rx| async move {
        match rx.recv().await {
            Ok(change) => Some((event(change), rx)),
            Err(RecvError::Lagged(_)) => Some((Ok(Event::default().event("lagged").data("")), rx)),
            Err(RecvError::Closed) => None,
        }
    });
    Sse::new(futures_util::stream::once(async move { first }).chain(rest))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// `router` with [`SECURITY_HEADERS`] on every answer.
pub fn harden(router: axum::Router) -> axum::Router {
    use axum::response::Response;
    router.layer(axum::middleware::map_response(|mut r: Response| async move {
        for (k, v) in SECURITY_HEADERS {
            if let Ok(v) = axum::http::HeaderValue::from_str(v) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }))
}

/// Serve `app` on `listen`, over TLS when `tls` is given; the task logs why it stopped, if it does.
pub async fn serve(
    listen: &str,
    tls: Option<rustls::ServerConfig>,
    app: axum::Router,
    page: &'static str,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| Error::io(std::path::PathBuf::from(listen), e))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %listen, "{page} at {scheme}://{listen}/");
    Ok(match tls {
        Some(tls) => {
            let listener = TlsListener::new(listener, tls)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!("{page} stopped: {}", e.kind());
                }
            })
        }
        None => tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("{page} stopped: {}", e.kind());
            }
        }),
    })
}

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The rustls server configuration of a certificate chain and key (PEM files); errors name the keys of `table`
/// (`console.tls`, `board.tls`).
pub fn server_tls(tls: &ServerTlsConfig, table: &str) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |p: &Path, what: &str, e: &dyn std::fmt::Display| Error::Config {
        file: p.to_path_buf(),
        key: format!("{table}.{what}"),
        reason: format!("not a PEM {what}: {e}"),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| bad(&tls.cert, "cert", &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(&tls.cert, "cert", &e))?;
    if chain.is_empty() {
        return Err(bad(&tls.cert, "cert", &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| bad(&tls.key, "key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Login(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(&tls.cert, "cert", &e))
}

/// A TCP listener whose connections are TLS, for `axum::serve`. Handshakes run on tasks of their own (each with
/// [`HANDSHAKE_TIMEOUT`]), so a slow or silent client holds up nobody; a failed handshake is logged and dropped.
pub struct TlsListener {
    local: std::net::SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
}

impl TlsListener {
    /// Serve TLS with `config` on the connections `tcp` accepts.
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> Result<TlsListener> {
        let local = tcp.local_addr().map_err(|source| Error::Runtime {
            what: "TLS listener",
            source,
        })?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("page: accept failed: {}", e.kind());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!("page: TLS handshake refused: {e}"),
                        Err(_) => tracing::info!("page: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // the accepting task ended: nothing more will come
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
