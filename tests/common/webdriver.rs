//! The browser tests' headless Chromium: [`alnrisk::webdriver::Browser`], with every failure a panic that says what
//! failed (a test that cannot drive its browser fails).

use std::path::Path;
use std::time::Duration;

#[allow(unused_imports)]
pub use alnrisk::webdriver::chromium;

/// `chromedriver` and a session of headless Chromium; both end when dropped.
pub struct Browser(alnrisk::webdriver::Browser);

fn ok<T>(r: alnrisk::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[allow(dead_code)]
impl Browser {
    /// Start one with a fresh profile under `profile`.
    pub fn start(profile: &Path) -> Browser {
        Browser(ok(alnrisk::webdriver::Browser::start(profile)))
    }
    /// Navigate to `url`.
    pub fn goto(&self, url: &str) {
        ok(self.0.goto(url))
    }
    /// The page's URL now.
    pub fn url(&self) -> String {
        ok(self.0.url())
    }
    /// Run `script` (a function body) in the page.
    pub fn eval(&self, script: &str) -> serde_json::Value {
        ok(self.0.eval(script))
    }
    /// Wait until `script` returns something other than null / false.
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> serde_json::Value {
        ok(self.0.wait_for(what, timeout, script))
    }
    /// Type `text` into the element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) {
        ok(self.0.type_into(css, text))
    }
    /// Click the element `css` selects.
    pub fn click(&self, css: &str) {
        ok(self.0.click(css))
    }
    /// Save a PNG screenshot at `path`.
    pub fn screenshot(&self, path: &Path) {
        ok(self.0.screenshot(path))
    }
}
