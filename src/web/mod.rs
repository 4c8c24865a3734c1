//! What the pages alnrisk serves have in common: the login ([`login`]), HTTPS with the site's certificate
//! ([`TlsListener`]), and the headers every answer carries. The console page (`alnrisk serve`,
//! [`crate::daemon::console`]) is built on it.
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

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The rustls server configuration of a certificate chain and key (PEM files).
pub fn server_tls(tls: &ServerTlsConfig) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |p: &Path, what: &str, e: &dyn std::fmt::Display| Error::Config {
        file: p.to_path_buf(),
        key: format!("console.tls.{what}"),
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
