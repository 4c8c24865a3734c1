//! `alnrisk demo` (the README's main command) in its quick form: synth → fit + sign → serve → three held-out
//! examinations over MQTT (atomic, partial write, late ROI) → LN read update → revised ROI → metrics, exit 0,
//! SYNTHETIC said.

mod common;

use std::process::Command;

#[test]
fn demo_runs_end_to_end_and_says_the_data_are_synthetic() {
    let port = |_: u8| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let dir = std::env::temp_dir().join(format!("alnrisk-demo-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_alnrisk"))
        .args(["demo", "--quick", "--mqtt-port", &port(0).to_string()])
        .args(["--metrics", &format!("127.0.0.1:{}", port(1))])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("ALL DATA HERE ARE SYNTHETIC"), "{text}");
    for step in ["[1/8]", "[2/8]", "[3/8]", "[4/8]", "[5/8]", "[6/8]", "[7/8]", "[8/8]"] {
        assert!(text.contains(step), "missing {step}: {text}");
    }
    assert!(text.contains("Table 2/3"), "the paper-style tables: {text}");
    assert!(text.contains("event: waiting_for_roi"), "{text}");
    assert_eq!(text.matches("[result · message").count(), 3, "{text}");
    assert!(text.contains("[update · message"), "{text}");
    assert!(text.contains("[revision · message"), "{text}");
    assert!(
        text.contains("alnrisk_series_processed_total{outcome=\"published\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("alnrisk_series_processed_total{outcome=\"revised\"} 1"),
        "{text}"
    );
    assert!(text.contains("alnrisk_messages_published_total 5"), "{text}");
}

/// `alnrisk demo --stay`: the console page's URL and login are printed while the daemon runs; after the last step
/// the daemon, its console page and the department board stay up (checked in headless Chromium: the run's three
/// examinations as cards, the demo box online on the board) until SIGTERM, and then the demo ends with 0.
#[test]
fn demo_stay_keeps_the_console_page_and_the_board_up_until_stopped() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    use common::webdriver::Browser;

    let port = common::free_port;
    let dir = std::env::temp_dir().join(format!("alnrisk-demo-stay-test-{}", std::process::id()));
    let (console, board) = (format!("127.0.0.1:{}", port()), format!("127.0.0.1:{}", port()));
    let mut demo = Command::new(env!("CARGO_BIN_EXE_alnrisk"))
        .args(["demo", "--quick", "--stay", "--mqtt-port", &port().to_string()])
        .args(["--metrics", &format!("127.0.0.1:{}", port())])
        .args(["--console", &console, "--board", &board])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = std::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut demo = Kill(demo);
    // read until it says it stays; the password is the one printed at step 3
    let (mut text, mut password, mut staying) = (String::new(), None, false);
    let started = Instant::now();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("console page: http://") {
            assert!(line.contains(&format!("http://{console}/")), "{line}");
            password = line
                .split("password ")
                .nth(1)
                .and_then(|r| r.split(';').next())
                .map(str::to_string);
        }
        text.push_str(&line);
        text.push('\n');
        staying |= line.starts_with("staying up until Ctrl-C");
        if staying && line.contains("department board  http://") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "{text}");
    }
    assert!(staying, "the demo did not stay: {text}");
    // the rest of its output, read on so that it can go on printing
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let password = password.unwrap_or_else(|| panic!("no console URL and password printed: {text}"));
    assert!(
        text.contains("[8/8]") && text.contains(&format!("http://{board}/")),
        "{text}"
    );
    assert!(!text.contains("demo done"), "it stopped by itself: {text}");

    let b = Browser::start(&dir.join("chromium-profile"));
    // each page sends the browser to its login first; user demo, the printed password; then `what` is shown
    let shows = |addr: &str, what: &str, script: &str| {
        b.goto(&format!("http://{addr}/"));
        assert!(b.url().ends_with("/login"), "{}", b.url());
        b.type_into("#user", "demo");
        b.type_into("#password", &password);
        b.click("#login");
        b.wait_for(what, Duration::from_secs(30), script);
    };
    shows(
        &console,
        "the demo's three examinations on the console page",
        "return document.querySelectorAll('section.card').length >= 3 || null",
    );
    shows(
        &board,
        "the demo box online on the board",
        "return document.querySelector('section.box[data-device=demo-box][data-state=online]')",
    );

    // still up a moment later, then stopped as Ctrl-C would (SIGTERM here: no terminal)
    std::thread::sleep(Duration::from_secs(1));
    assert!(demo.0.try_wait().unwrap().is_none(), "the demo ended by itself");
    let pid = demo.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let st = demo.0.wait().unwrap();
    let rest = rest.join().unwrap();
    assert!(st.success(), "{st}: {rest}");
    assert!(rest.contains("demo done"), "{rest}");
    assert!(
        common::http_get(&console, "/login").is_none() && common::http_get(&board, "/login").is_none(),
        "a page outlived the demo"
    );
}
