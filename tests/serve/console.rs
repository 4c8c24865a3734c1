//! The console page in a real browser (headless Chromium over WebDriver) against a real daemon and a real
//! mosquitto: the login is required and a wrong password refused; a replayed examination's card appears with the
//! MQTT result's probabilities; an LN read entered on the page publishes an `update` and the card changes; after
//! `kill -9` and a restart the page reconnects by itself and shows the day's cards again.

use super::common::webdriver::Browser;
use super::harness::*;

pub(super) const PASSWORD: &str = "console test password";

/// A password file with user `tech`, written by `alnrisk console-user` as a site would.
pub(super) fn password_file(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let file = dir.join("console-users");
    let mut child = bin()
        .args(["console-user", "--file"])
        .arg(&file)
        .args(["--user", "tech"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("tech:$argon2id$") && !text.contains(PASSWORD),
        "{text}"
    );
    file
}

/// The probabilities the page shows on the card of `study`, by figure (`if_ln_negative`, `if_ln_positive`,
/// `risk`), and the card's state text.
const CARD_FIGURES: &str = r#"
    const card = document.querySelector(`section.card[data-study-key="STUDY"]`);
    if (!card || card.dataset.state !== "answered") return null;
    const figs = {};
    for (const f of card.querySelectorAll(".figure")) figs[f.dataset.which] = Number(f.dataset.probability);
    return { figs, state: card.querySelector(".state").textContent, text: card.textContent };
"#;

#[test]
fn the_console_page_logs_in_shows_the_card_takes_the_ln_read_and_comes_back_after_kill_9() {
    if super::common::webdriver::chromium().is_none() {
        panic!("chromium not found: apt-get install chromium chromium-driver");
    }
    let m = Mosquitto::new("console", "");
    let sub = Subscriber::new(m.port, "console-sub");
    let dir = tmp("console-page");
    let users = password_file(&dir);
    let listen = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        "[console]\nlisten = \"{listen}\"\npassword_file = \"{}\"\n",
        users.display()
    );
    let mut d = Daemon::with(
        "console",
        DaemonOpts {
            extra: &extra,
            ..DaemonOpts::external(m.port)
        },
    );
    let base = format!("http://{listen}");

    // Nothing without a login: the API answers 401, the page sends the browser to the login form.
    assert_eq!(http_get(&listen, "/api/events").map(|r| r.0), Some(401));
    assert_eq!(http_get(&listen, "/api/info").map(|r| r.0), Some(401));
    let b = Browser::start(&dir.join("chromium-profile"));
    b.goto(&format!("{base}/"));
    assert!(b.url().ends_with("/login"), "{}", b.url());
    b.type_into("#user", "tech");
    b.type_into("#password", "not the password");
    b.click("#login");
    b.wait_for(
        "the refusal",
        Duration::from_secs(10),
        "return document.querySelector('.refused')?.textContent",
    );
    assert!(b.url().ends_with("/login"));
    assert_eq!(http_get(&listen, "/api/info").map(|r| r.0), Some(401));
    b.type_into("#user", "tech");
    b.type_into("#password", PASSWORD);
    b.click("#login");
    b.wait_for(
        "the live page",
        Duration::from_secs(10),
        "return document.querySelector('#connection')?.textContent === 'live'",
    );
    assert!(b.url().ends_with(&format!("{listen}/")), "{}", b.url());

    // A replayed examination: its card shows both scenarios, equal to the MQTT result's.
    let src = exam(6);
    let key = key_of(&src);
    d.drop_exam(&src, "a", ReplayStyle::Atomic);
    let result = sub.wait("result", 1, Duration::from_secs(120)).remove(0);
    assert_eq!(result["study_key"], key.as_str());
    let script = CARD_FIGURES.replace("STUDY", &key);
    let card = b.wait_for("the card", Duration::from_secs(10), &script);
    for which in ["if_ln_negative", "if_ln_positive"] {
        let page = card["figs"][which].as_f64().unwrap();
        let mqtt = result["scenarios"][which]["probability"].as_f64().unwrap();
        assert!((page - mqtt).abs() < 1e-12, "{which}: page {page}, MQTT {mqtt}");
    }
    assert!(
        card["figs"]["risk"].is_null(),
        "no single answer while the LN read is unknown"
    );
    let text = card["text"].as_str().unwrap();
    let shown_always = [
        "If the MRI LN read is NEGATIVE",
        "If the MRI LN read is POSITIVE",
        "MRI-reported LN",
        "points",
    ];
    for shown in shown_always {
        assert!(text.contains(shown), "{shown:?} not on the card: {text}");
    }
    // a bar per predictor of the bundle's nomogram, in the nomogram's words
    let info: serde_json::Value = b.eval("return fetch('/api/info').then(r => r.json())");
    let bars = b.eval(&format!(
        "return document.querySelectorAll('section.card[data-study-key=\"{key}\"] .axis').length"
    ));
    assert_eq!(
        bars.as_u64(),
        Some(info["predictors"].as_array().unwrap().len() as u64),
        "{info}"
    );
    assert!(
        b.eval("return document.querySelector('#banners').textContent")
            .as_str()
            .unwrap()
            .contains("SYNTHETIC"),
        "the synthetic examination's banner"
    );
    assert!(
        !text.contains("SYNTHETIC^"),
        "no patient name without console.show_identifiers"
    );
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    b.screenshot(&shots.join("console-result.png"));

    // The LN read entered on the page: an update on MQTT, and the card shows its one answer.
    b.click(&format!("section.card[data-study-key=\"{key}\"] button.ln-positive"));
    wait_for("the update on MQTT", Duration::from_secs(20), || {
        sub.of("result").iter().any(|r| r["kind"] == "update")
    });
    let update = sub.of("result").into_iter().find(|r| r["kind"] == "update").unwrap();
    assert_eq!(
        (update["study_key"].as_str(), update["mri_ln_status"].as_str()),
        (Some(key.as_str()), Some("positive"))
    );
    let updated = b.wait_for(
        "the updated card",
        Duration::from_secs(10),
        &format!("const c = (() => {{ {script} }})(); return c && c.figs.risk !== undefined ? c : null;"),
    );
    let page = updated["figs"]["risk"].as_f64().unwrap();
    let mqtt = update["risk"]["probability"].as_f64().unwrap();
    assert!((page - mqtt).abs() < 1e-12, "page {page}, MQTT {mqtt}");
    assert!(
        updated["state"]
            .as_str()
            .unwrap()
            .contains("Updated: MRI LN read positive"),
        "{updated}"
    );
    assert!(
        updated["text"].as_str().unwrap().contains("Replaces the result of"),
        "{updated}"
    );
    b.screenshot(&shots.join("console-update.png"));

    // kill -9: the page says so, and reconnects by itself to the restarted daemon, with the card as it was.
    d.kill9();
    b.wait_for(
        "the page to notice",
        Duration::from_secs(15),
        "return document.querySelector('#connection').textContent !== 'live'",
    );
    d.start();
    b.wait_for(
        "the page to reconnect",
        Duration::from_secs(30),
        "return document.querySelector('#connection').textContent === 'live'",
    );
    let again = b.wait_for(
        "the card after the restart",
        Duration::from_secs(10),
        &format!("const c = (() => {{ {script} }})(); return c && c.figs.risk !== undefined ? c : null;"),
    );
    assert_eq!(again["figs"]["risk"].as_f64(), Some(page));
    // nothing of the page went to MQTT
    assert!(!sub.everything().contains("SYNTHETIC^"));
}

/// `curl` against the page over TLS, trusting `ca`: the status code and the headers.
fn curl(ca: &Path, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(ca)
        .args(args)
        .output()
        .expect("curl (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let code = text
        .get(text.len().saturating_sub(3)..)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn the_console_page_over_tls_serves_https_only_and_its_cookie_is_secure() {
    let m = Mosquitto::new("console-tls", "");
    let dir = tmp("console-tls");
    let users = password_file(&dir);
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "page.key", "-out", "page.crt",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=alnrisk console",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let listen = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        "[console]\nlisten = \"{listen}\"\npassword_file = \"{}\"\n[console.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        users.display(),
        dir.join("page.crt").display(),
        dir.join("page.key").display()
    );
    let _d = Daemon::with(
        "console-tls",
        DaemonOpts {
            extra: &extra,
            ..DaemonOpts::external(m.port)
        },
    );
    let ca = dir.join("page.crt");
    let url = format!("https://{listen}");
    assert_eq!(curl(&ca, &[&format!("{url}/login")]).0, 200);
    assert_eq!(curl(&ca, &[&format!("{url}/api/info")]).0, 401);
    // the wrong password, then the right one: a Secure, HttpOnly, SameSite=Strict cookie
    let form = |p: &str| format!("user=tech&password={}", p.replace(' ', "+"));
    let (code, _) = curl(&ca, &["--data", &form("wrong password"), &format!("{url}/login")]);
    assert_eq!(code, 401);
    let (code, head) = curl(&ca, &["--data", &form(PASSWORD), &format!("{url}/login")]);
    assert_eq!(code, 303, "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    for part in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let value = cookie
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        curl(&ca, &["-H", &format!("Cookie: {value}"), &format!("{url}/api/info")]).0,
        200
    );
    assert!(head.to_ascii_lowercase().contains("content-security-policy:"), "{head}");
    // plain HTTP on the TLS port gets no page
    assert!(http_get(&listen, "/login").is_none_or(|(code, _)| code != 200));
}
