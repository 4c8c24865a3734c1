//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), for the developer tools:
//! the browser tests of the pages alnrisk serves, and `bench-e2e`'s page subscriber. A tiny W3C WebDriver client
//! over plain HTTP/1.1 on loopback; every check runs as JavaScript in the page ([`Browser::eval`]), so it sees what
//! a person sees.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

fn fail(what: impl std::fmt::Display) -> Error {
    Error::Browser(what.to_string())
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| fail(format!("no free port: {e}")))
}

/// `chromedriver` and a session of headless Chromium; both end when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

fn http(port: u16, method: &str, path: &str, body: Option<&serde_json::Value>) -> Option<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    // chromedriver keeps the connection open: read the head, then Content-Length bytes
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())?;
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// The Chromium binary.
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Browser {
    /// Start `chromedriver` and a headless Chromium session with a fresh profile under `profile`.
    pub fn start(profile: &Path) -> Result<Browser> {
        let binary = chromium().ok_or_else(|| fail("chromium not found (apt-get install chromium)"))?;
        let port = free_port()?;
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("chromedriver (apt-get install chromium-driver): {e}")))?;
        let t = Instant::now();
        while !http(port, "GET", "/status", None).is_some_and(|v| v["value"]["ready"] == true) {
            if t.elapsed() > Duration::from_secs(20) {
                let _ = driver.kill();
                return Err(fail("chromedriver did not get ready in 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": binary.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1400", format!("--user-data-dir={}", profile.display())]
        }}}});
        let session = http(port, "POST", "/session", Some(&caps))
            .and_then(|v| v["value"]["sessionId"].as_str().map(str::to_string));
        match session {
            Some(session) => Ok(Browser { driver, port, session }),
            None => {
                let _ = driver.kill();
                Err(fail("no WebDriver session"))
            }
        }
    }

    fn call(&self, method: &str, what: &str, body: Option<serde_json::Value>) -> Result<serde_json::Value> {
        let path = format!("/session/{}/{what}", self.session);
        let v = http(self.port, method, &path, body.as_ref()).ok_or_else(|| fail(format!("WebDriver {what}")))?;
        if let Some(e) = v["value"]["error"].as_str() {
            return Err(fail(format!("WebDriver {what}: {e}: {}", v["value"]["message"])));
        }
        Ok(v["value"].clone())
    }

    /// Navigate to `url` (and wait for the page to load).
    pub fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "url", Some(serde_json::json!({ "url": url })))
            .map(drop)
    }

    /// The page's URL now.
    pub fn url(&self) -> Result<String> {
        Ok(self.call("GET", "url", None)?.as_str().unwrap_or_default().to_string())
    }

    /// Run `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Result<serde_json::Value> {
        self.call(
            "POST",
            "execute/sync",
            Some(serde_json::json!({ "script": script, "args": [] })),
        )
    }

    /// Wait until `script` returns something other than null / false (its value).
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Result<serde_json::Value> {
        let t = Instant::now();
        loop {
            let v = self.eval(script)?;
            if !(v.is_null() || v == false) {
                return Ok(v);
            }
            if t.elapsed() > timeout {
                return Err(fail(format!(
                    "timed out after {timeout:?} waiting in the page for {what}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Type `text` into the element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.element(css)?;
        self.call(
            "POST",
            &format!("element/{id}/value"),
            Some(serde_json::json!({ "text": text })),
        )
        .map(drop)
    }

    /// Click the element `css` selects, as a person would (WebDriver's element click).
    pub fn click(&self, css: &str) -> Result<()> {
        let id = self.element(css)?;
        self.call("POST", &format!("element/{id}/click"), Some(serde_json::json!({})))
            .map(drop)
    }

    fn element(&self, css: &str) -> Result<String> {
        let v = self.call(
            "POST",
            "element",
            Some(serde_json::json!({ "using": "css selector", "value": css })),
        )?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .map(str::to_string)
            .ok_or_else(|| fail(format!("no element {css}")))
    }

    /// Save a PNG screenshot of the window at `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let b64 = self.call("GET", "screenshot", None)?;
        let png = base64_decode(b64.as_str().unwrap_or_default()).ok_or_else(|| fail("a screenshot not in base64"))?;
        if !png.starts_with(b"\x89PNG") {
            return Err(fail("a screenshot that is no PNG"));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::write(path, png).map_err(|e| Error::io(path, e))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots; `None` for any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| value(c).map(u32::from)).collect::<Option<_>>()?;
        let n = v.iter().fold(0u32, |acc, &x| acc << 6 | x) << (6 * (4 - v.len()));
        let take = v.len() * 6 / 8;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_as_rfc_4648_says() {
        // RFC 4648 section 10's test vectors
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64_decode(coded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(super::base64_decode("Zm9v!"), None);
    }
}
