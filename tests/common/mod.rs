//! What the integration tests share: fresh temporary folders, a free loopback port, waiting for a condition,
//! the `alnrisk` binary, a plain HTTP GET, and a private mosquitto on loopback. Each test file takes it with
//! `mod common;` (or `#[path]` from a folder); what one file does not use is allowed to go unused. [`webdriver`]
//! drives a headless Chromium for the pages' browser tests.

#![allow(dead_code)]

pub mod orthanc;
pub mod webdriver;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `alnrisk` binary this test run built.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_alnrisk"))
}

/// A new, empty folder `alnrisk-{suite}-{name}-{pid}` under the system's temporary folder (removed first if a
/// previous run of this process id left one).
pub fn tmp(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("alnrisk-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("the temporary folder must be writable");
    d
}

/// The path of a scratch file `name` in the folder `alnrisk-{suite}-{pid}`, which is created but never cleared
/// (tests of one file run in parallel and share it).
pub fn tmp_file(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("alnrisk-{suite}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("the temporary folder must be writable");
    d.join(name)
}

/// A golden file of `tests/data/golden/`, written by a committed script of `tests/golden/`.
pub fn golden(name: &str) -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("the golden file is committed")).expect("valid JSON")
}

/// A golden file's design matrix `x` (rows of numbers) and binary outcome `y` (1 = positive).
pub fn golden_xy(g: &serde_json::Value) -> (Vec<Vec<f64>>, Vec<bool>) {
    let number = |v: &serde_json::Value| v.as_f64().expect("a number");
    let rows = |v: &serde_json::Value| v.as_array().expect("an array").iter().map(number).collect();
    let x = g["x"].as_array().expect("x").iter().map(rows).collect();
    let y = g["y"]
        .as_array()
        .expect("y")
        .iter()
        .map(|v| v.as_i64() == Some(1))
        .collect();
    (x, y)
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("loopback must be available")
}

/// Poll `f` every 100 ms until it holds; panic naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// `GET path` on `addr` over plain HTTP/1.1: the status code and the body (`None` when nothing answers).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // axum answers with a content length; no chunked decoding needed
    Some((code, body))
}

/// A private mosquitto on loopback, stopped and started at will, killed when dropped.
pub struct Mosquitto {
    /// Its configuration file.
    pub conf: PathBuf,
    /// The plain listener's port.
    pub port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    /// Anonymous, plain, with persistence (so a restart keeps sessions), plus `extra` configuration lines.
    pub fn new(name: &str, extra: &str) -> Mosquitto {
        let dir = tmp("mosquitto", name);
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nper_listener_settings false\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 listener {port} 127.0.0.1\n{extra}\n",
                dir.display()
            ),
        )
        .expect("the configuration must be writable");
        Mosquitto::with_config(conf, port)
    }

    /// A mosquitto on a configuration written by the caller, listening (at least) on `port`.
    pub fn with_config(conf: PathBuf, port: u16) -> Mosquitto {
        let mut m = Mosquitto {
            conf,
            port,
            child: None,
        };
        m.start();
        m
    }

    /// Start it and wait until it listens.
    pub fn start(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (.ci/run installs it: apt-get install -y mosquitto)");
        self.child = Some(child);
        let port = self.port;
        wait_for("mosquitto to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stop it with SIGTERM (it saves its persistence) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
