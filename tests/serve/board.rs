//! The department board in a real browser (headless Chromium over WebDriver): `alnrisk board` subscribes as the
//! site's dashboard user of the shipped ACL (the shipped file with the site and device names rewritten) to a real
//! mosquitto with passwords, and shows two real daemons: both online with their bundle, a result of one, and the
//! other offline once it is killed (the broker's last will). The login is required.

use super::common::webdriver::Browser;
use super::harness::*;

const SITE: &str = "test-site";

fn mosquitto_passwd(file: &Path, user: &str, password: &str) {
    let mut cmd = Command::new("mosquitto_passwd");
    if !file.exists() {
        cmd.arg("-c");
    }
    let out = cmd
        .arg("-b")
        .arg(file)
        .args([user, password])
        .output()
        .expect("mosquitto_passwd");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The shipped ACL with its site `hospital-a` and its two devices renamed to this test's site and boxes.
fn acl() -> String {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/mosquitto/alnrisk.acl"))
            .unwrap();
    for name in ["mri1-jetson", "mri2-jetson", "dashboard-hospital-a"] {
        assert!(shipped.contains(name), "the shipped ACL no longer names {name}");
    }
    shipped
        .replace("mri1-jetson", "board1")
        .replace("mri2-jetson", "board2")
        .replace("hospital-a", SITE)
}

fn password(user: &str) -> String {
    format!("pw-{user}-{}", std::process::id())
}

/// One box: a daemon that logs in to the broker as its ACL user, with a short keep-alive so that the broker
/// publishes its last will soon after it dies.
fn start_box(device: &str, dir: &Path, port: u16) -> Daemon {
    let user = format!("alnrisk-{SITE}-{device}");
    let file = dir.join(format!("{device}.password"));
    std::fs::write(&file, password(&user)).unwrap();
    let mqtt = format!(
        "broker = \"external\"\nhost = \"127.0.0.1\"\nport = {port}\nreconnect_ms = 300\nkeep_alive_s = 5\n\
         username = \"{user}\"\npassword_file = \"{}\"\n",
        file.display()
    );
    Daemon::with(device, DaemonOpts::mqtt(mqtt))
}

#[test]
fn the_board_shows_two_boxes_a_result_and_a_box_going_offline_by_its_last_will() {
    let dir = tmp("board");
    let pw = dir.join("mosquitto.passwd");
    for user in [
        format!("alnrisk-{SITE}-board1"),
        format!("alnrisk-{SITE}-board2"),
        format!("dashboard-{SITE}"),
    ] {
        mosquitto_passwd(&pw, &user, &password(&user));
    }
    std::fs::write(dir.join("alnrisk.acl"), acl()).unwrap();
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nper_listener_settings false\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             listener {port} 127.0.0.1\n",
            pw.display(),
            dir.join("alnrisk.acl").display()
        ),
    )
    .unwrap();
    let _broker = Mosquitto::with_config(conf, port);
    let box1 = start_box("board1", &dir, port);
    let mut box2 = start_box("board2", &dir, port);

    // the board, as the dashboard user, with its own login
    let users = dir.join("board-users");
    let mut child = bin()
        .args(["console-user", "--file"])
        .arg(&users)
        .args(["--user", "radiology"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "board test password").unwrap();
    }
    assert!(child.wait().unwrap().success());
    let dash = format!("dashboard-{SITE}");
    std::fs::write(dir.join("dashboard.password"), password(&dash)).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let board_toml = dir.join("board.toml");
    std::fs::write(
        &board_toml,
        format!(
            "[board]\nsite = \"{SITE}\"\nlisten = \"{listen}\"\npassword_file = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\n\
             port = {port}\nusername = \"{dash}\"\npassword_file = \"{}\"\n",
            users.display(),
            dir.join("dashboard.password").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("board.log")).unwrap();
    let mut board = bin()
        .args(["board", "--config"])
        .arg(&board_toml)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _board = Kill(&mut board);
    wait_for("the board's page", Duration::from_secs(20), || {
        http_get(&listen, "/login").is_some()
    });
    assert_eq!(
        http_get(&listen, "/api/events").map(|r| r.0),
        Some(401),
        "no events without a login"
    );

    let b = Browser::start(&dir.join("chromium-profile"));
    b.goto(&format!("http://{listen}/"));
    assert!(b.url().ends_with("/login"), "{}", b.url());
    b.type_into("#user", "radiology");
    b.type_into("#password", "board test password");
    b.click("#login");
    let online = r#"return [...document.querySelectorAll("section.box")].map(b => b.dataset.device + ":" + b.dataset.state).sort().join(",")"#;
    b.wait_for(
        "two boxes online",
        Duration::from_secs(30),
        &format!("{online} === 'board1:online,board2:online' || null"),
    );
    let text = b.eval("return document.querySelector('section.box[data-device=board1]').textContent");
    assert!(text.as_str().unwrap().contains("model "), "{text}");
    assert_eq!(
        b.eval("return document.querySelector('#connection').textContent")
            .as_str(),
        Some("live")
    );

    // a result of board1 appears on its tile
    box1.drop_exam(&exam(7), "a", ReplayStyle::Atomic);
    b.wait_for(
        "board1's result",
        Duration::from_secs(120),
        "return document.querySelector('section.box[data-device=board1] tr.result[data-kind=result]')",
    );
    let row = b.eval("return document.querySelector('section.box[data-device=board1] tr.result').textContent");
    assert!(
        row.as_str().unwrap().contains("LN−:") && row.as_str().unwrap().contains(&key_of(&exam(7))[..8]),
        "{row}"
    );

    // kill -9 board2: the broker publishes its last will, and the board shows it offline
    box2.kill9();
    b.wait_for(
        "board2 offline",
        Duration::from_secs(30),
        &format!("{online} === 'board1:online,board2:offline' || null"),
    );
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    b.screenshot(&shots.join("board.png"));
}
