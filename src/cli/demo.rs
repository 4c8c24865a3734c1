//! `alnrisk demo`: the product end to end on a SYNTHETIC cohort, in one command.
//!
//! 1. synthesise the cohort (DICOM + SEG, planted model; `synth`);
//! 2. fit and sign a bundle exactly as `alnrisk fit` does (progress bars, the paper-style tables);
//! 3. start `alnrisk serve` (a child process, embedded broker, loopback) on a temporary export folder;
//! 4. replay three held-out test examinations into it: one written atomically, one with a partial write, one whose
//!    ROI arrives late (after the `waiting_for_roi` event);
//! 5. subscribe and print each risk message as a summary;
//! 6. send the MRI LN read of one study on `cmd/ln-status` and print the updated result;
//! 7. export a corrected outline (a revised SEG) for that study and print the revision;
//! 8. print a metrics snapshot, stop the daemon with SIGTERM, and exit 0.
//!
//! The daemon serves its console page on loopback while the demo runs (the URL, a user `demo` and a password made
//! for this run are printed at step 3). With `--stay` the demo does not stop at step 8: it starts the department
//! board beside the daemon and keeps both pages up until Ctrl-C (or SIGTERM).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use alnrisk::daemon::listen::Listener;
use alnrisk::synth::replay::{ReplayStyle, replay};

/// Options of `alnrisk demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Working folder (default: a new folder under the system's temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Patients in the synthetic cohort.
    #[arg(long, default_value_t = 151)]
    pub patients: usize,
    /// In-plane matrix of the synthetic examinations.
    #[arg(long, default_value_t = 128)]
    pub matrix: usize,
    /// Slices of the synthetic examinations.
    #[arg(long, default_value_t = 32)]
    pub slices: usize,
    /// Small and fast (reduced-width VGG, few epochs): for the test suite.
    #[arg(long, hide = true)]
    pub quick: bool,
    /// MQTT port of the embedded broker.
    #[arg(long, default_value_t = 18830)]
    pub mqtt_port: u16,
    /// Address of the daemon's metrics endpoint.
    #[arg(long, default_value = "127.0.0.1:19108")]
    pub metrics: String,
    /// Address of the daemon's console page (plain HTTP: keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:18443")]
    pub console: String,
    /// Address of the department board (`--stay` only; plain HTTP: keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:18444")]
    pub board: String,
    /// Keep the daemon, its console page and the department board up after the last step, until Ctrl-C.
    #[arg(long)]
    pub stay: bool,
}

/// The console page's and the board's login for this run: user `demo`, a fresh random password (printed).
fn demo_login(dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let bytes = alnrisk::rng::os_random::<9>()?;
    let password = hex::encode(bytes);
    let users = dir.join("console-users");
    alnrisk::web::login::set_user(&users, "demo", &password)?;
    Ok((users, password))
}

/// Start `alnrisk board` on the demo's broker for site `demo-site`, and wait until its page answers.
fn start_board(exe: &Path, dir: &Path, a: &DemoArgs, users: &Path) -> anyhow::Result<DaemonProcess> {
    let config = dir.join("board.toml");
    std::fs::write(
        &config,
        format!(
            "# written by `alnrisk demo --stay`; see firmware-config/board.toml\n[board]\nsite = \"demo-site\"\n\
             listen = \"{listen}\"\npassword_file = \"{users}\"\nstate_dir = \"{state}\"\n[mqtt]\n\
             host = \"127.0.0.1\"\nport = {port}\n",
            listen = a.board,
            users = users.display(),
            state = dir.display(),
            port = a.mqtt_port
        ),
    )?;
    let mut board = DaemonProcess::spawn_command(exe, "board", &config, &dir.join("board.log"))?;
    let t = Instant::now();
    while http_get(&a.board, "/login").is_none() {
        if t.elapsed() > Duration::from_secs(30) || board.exited() {
            bail!("the board did not come up; see {}", dir.join("board.log").display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(board)
}

/// Block until Ctrl-C (SIGINT) or SIGTERM.
fn wait_for_ctrl_c() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    Ok(())
}

/// Connect a dashboard-like listener to `alnrisk/#` on the loopback broker at `port`.
pub(crate) fn subscribe(port: u16) -> anyhow::Result<Listener> {
    let mut o = rumqttc::v5::MqttOptions::new(format!("alnrisk-dashboard-{}", std::process::id()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    Listener::connect(o, "alnrisk/#").context("the dashboard subscriber could not connect to the broker")
}

/// The first message (topic, body) that `f` accepts, and when it arrived.
pub(crate) fn wait_message(
    l: &Listener,
    timeout: Duration,
    f: impl Fn(&str, &serde_json::Value) -> bool,
) -> anyhow::Result<(serde_json::Value, Instant)> {
    l.wait_for(timeout, |r| f(&r.topic, &r.body))
        .map(|r| (r.body, r.at))
        .with_context(|| format!("no matching message within {timeout:?}"))
}

fn fmt_points(points: &serde_json::Value) -> String {
    points
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k} {:.1}", v.as_f64().unwrap_or(f64::NAN)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Print which result an update or a revision replaces, and check that it is the study's first result.
fn replaces(
    msg: &serde_json::Value,
    first: Option<&serde_json::Value>,
    since: &str,
    took: Duration,
) -> anyhow::Result<()> {
    let kind = msg["kind"].as_str().unwrap_or("?");
    println!(
        "      {kind} {} replaces result {} ({:.0} ms after {since})",
        msg["message_id"].as_str().unwrap_or(""),
        msg["updates"].as_str().unwrap_or(""),
        took.as_secs_f64() * 1e3
    );
    if first.is_some_and(|f| f["message_id"] != msg["updates"]) {
        bail!("the {kind} does not name the study's first result");
    }
    Ok(())
}

fn summary(label: &str, v: &serde_json::Value, last_file: Option<Instant>, at: Instant) {
    println!(
        "\n  ┌ {label}  [{} · message {}]",
        v["kind"].as_str().unwrap_or("?"),
        v["message_id"].as_str().unwrap_or("?")
    );
    println!(
        "  │ study key      {}…",
        v["study_key"].as_str().unwrap_or("").get(..16).unwrap_or("")
    );
    println!("  │ MRI LN read    {}", v["mri_ln_status"].as_str().unwrap_or("?"));
    if let Some(f) = v["reported_factors"].as_object() {
        let f: Vec<String> = f
            .iter()
            .map(|(k, x)| format!("{k} {}", x.as_str().unwrap_or("?")))
            .collect();
        println!("  │ reported       {}", f.join(", "));
    }
    if let Some(m) = v["missing_factors"].as_array() {
        let m: Vec<&str> = m.iter().filter_map(|x| x.as_str()).collect();
        println!("  │ no risk yet    waiting for {} to be reported", m.join(", "));
    }
    if let Some(r) = v["risk"].as_object() {
        println!(
            "  │ P(ALN+)        {:.3}  → {} risk (cutoff {:.3})",
            r["probability"].as_f64().unwrap_or(f64::NAN),
            r["class"].as_str().unwrap_or("?"),
            v["cutoff"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "  │ points         {}  (total {:.1})",
            fmt_points(&r["points"]),
            r["total_points"].as_f64().unwrap_or(f64::NAN)
        );
    }
    if let Some(s) = v["scenarios"].as_object() {
        for (name, r) in s {
            println!(
                "  │ {name:<15}P(ALN+) {:.3} ({}) · points {} (total {:.1})",
                r["probability"].as_f64().unwrap_or(f64::NAN),
                r["class"].as_str().unwrap_or("?"),
                fmt_points(&r["points"]),
                r["total_points"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    if let Some(sig) = v["signatures"].as_object() {
        let s: Vec<String> = sig
            .iter()
            .map(|(k, x)| format!("{k} {:.3}", x.as_f64().unwrap_or(f64::NAN)))
            .collect();
        println!("  │ signatures     {}", s.join(", "));
    }
    // what a dashboard shows beside the risk: the inputs the model was not fitted on
    for flag in v["out_of_distribution"].as_array().into_iter().flatten() {
        println!("  │ ⚠ outside training  {}", flag.as_str().unwrap_or_default());
    }
    let t = &v["timing_ms"];
    if t.as_object().is_some_and(|o| !o.is_empty()) {
        println!(
            "  │ timing         load {:.0} ms · features {:.0} ms · nomogram {:.2} ms · daemon last file → result {:.0} ms",
            t["load"].as_f64().unwrap_or(0.0),
            t["features"].as_f64().unwrap_or(0.0),
            t["nomogram"].as_f64().unwrap_or(0.0),
            t["last_file_to_result"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(lf) = last_file {
        println!(
            "  └ last file written → message received here: {:.2} s",
            at.duration_since(lf).as_secs_f64()
        );
    } else {
        println!("  └");
    }
}

/// `alnrisk serve` as a child process, killed if still running when dropped.
pub(crate) struct DaemonProcess(Child);

impl DaemonProcess {
    /// Start `exe serve --config config`, logging to `log`.
    pub(crate) fn spawn(exe: &Path, config: &Path, log: &Path) -> anyhow::Result<DaemonProcess> {
        DaemonProcess::spawn_command(exe, "serve", config, log)
    }

    /// Start `exe <command> --config config` (`serve`, `board`), logging to `log`.
    fn spawn_command(exe: &Path, command: &str, config: &Path, log: &Path) -> anyhow::Result<DaemonProcess> {
        let log = std::fs::File::create(log)?;
        Ok(DaemonProcess(
            Command::new(exe)
                .arg(command)
                .arg("--config")
                .arg(config)
                .env("RUST_LOG", "info,rumqttd=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?,
        ))
    }

    /// Whether it has exited.
    pub(crate) fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }

    /// Its pid.
    pub(crate) fn id(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then wait.
    pub(crate) fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        self.0.wait().ok()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// A test-cohort row of the synthetic cohort: (id, mri_ln_status, every column by name).
type TestRow = (String, String, BTreeMap<String, String>);

/// The test-cohort rows of the synthetic cohort.
fn test_rows(cohort: &Path) -> anyhow::Result<Vec<TestRow>> {
    let mut r = csv::Reader::from_path(cohort.join("cohort.csv"))?;
    let h = r.headers()?.clone();
    let col = |n: &str| {
        h.iter()
            .position(|x| x == n)
            .with_context(|| format!("cohort.csv lacks {n}"))
    };
    let (ci, cl, cc) = (col("id")?, col("mri_ln_status")?, col("cohort")?);
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec?;
        if &rec[cc] == "test" {
            let row = h
                .iter()
                .zip(rec.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            out.push((rec[ci].to_string(), rec[cl].to_string(), row));
        }
    }
    Ok(out)
}

/// Run the demo.
pub fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("alnrisk-demo-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let (patients, matrix, slices) = if a.quick {
        (60, 64, 16)
    } else {
        (a.patients, a.matrix, a.slices)
    };
    println!("════════════════════════════════════════════════════════════════════════════════════════");
    println!(" alnrisk demo — ALL DATA HERE ARE SYNTHETIC (generated phantoms, no patient). Not for clinical use.");
    println!("════════════════════════════════════════════════════════════════════════════════════════");
    println!(
        "\n[1/8] synthesising {patients} patients ({matrix}×{matrix}×{slices}, 3 phases, DICOM + SEG) in {}",
        dir.display()
    );
    let cohort = dir.join("cohort");
    let st = Command::new(&exe)
        .args(["synth", "--patients", &patients.to_string(), "--seed", "7"])
        .args(["--matrix", &matrix.to_string(), "--slices", &slices.to_string()])
        .arg("--out")
        .arg(&cohort)
        .status()?;
    if !st.success() {
        bail!("synth failed");
    }

    println!(
        "\n[2/8] fitting the study's model (radiomics + VGG-16 → t-test + LASSO → signatures → classifiers → nomogram) and signing the bundle"
    );
    let (secret, public) = alnrisk::model::bundle::keygen(&dir.join("signing"))?;
    let bundle = dir.join("bundle");
    let mut fit_args = vec![
        "fit".to_string(),
        "--cohort".into(),
        cohort.join("cohort.csv").display().to_string(),
        "--out".into(),
        bundle.display().to_string(),
        "--report".into(),
        dir.join("report").display().to_string(),
        "--key".into(),
        secret.display().to_string(),
        // the study's nomogram: the two signatures and the MRI-reported LN status (the synthetic tumour size is
        // measured on the same ROI as the radiomics and would duplicate it; a bundle with it is served too, see
        // tests/serve/factors.rs)
        "--clinical-candidates".into(),
        alnrisk::model::predict::MRI_LN.into(),
    ];
    if a.quick {
        fit_args.extend(["--vgg-scale", "8", "--views", "2", "--epochs", "10"].map(String::from));
    }
    let st = Command::new(&exe).args(&fit_args).status()?;
    if !st.success() {
        bail!("fit failed");
    }
    // what the radiologist must report (the daemon takes every clinical factor of a nomogram like the LN read)
    let trust = alnrisk::model::Trust::from_public_key(Some(&public))?;
    let needs = alnrisk::model::reported::needs(&alnrisk::model::Bundle::load(&bundle, &trust)?.manifest);
    println!(
        "      the nomogram needs reported: {}",
        needs.iter().map(|n| n.column.as_str()).collect::<Vec<_>>().join(", ")
    );

    println!(
        "\n[3/8] starting `alnrisk serve` (embedded MQTT broker on 127.0.0.1:{}, metrics on {})",
        a.mqtt_port, a.metrics
    );
    let export = dir.join("export");
    let state = dir.join("state");
    std::fs::create_dir_all(&export)?;
    let (users, password) = demo_login(&dir)?;
    let config = dir.join("demo.toml");
    std::fs::write(
        &config,
        format!(
            r#"# written by `alnrisk demo`; see firmware-config/alnrisk.toml for every key
[site]
site = "demo-site"
device = "demo-box"
[watch]
export_dir = "{export}"
poll_interval_ms = 200
stable_ms = 400
[assemble]
quiet_period_s = 2.0
roi_wait_s = 3.0
[[select]]
name = "breast-dce"
modality = "MR"
image_type_contains = ["ORIGINAL"]
min_temporal_positions = 2
[model]
bundle = "{bundle}"
public_key = "{public}"
device = "auto"
[mqtt]
broker = "embedded"
host = "127.0.0.1"
port = {port}
[state]
dir = "{state}"
[metrics]
listen = "{metrics}"
[console]
listen = "{console}"
password_file = "{users}"
"#,
            export = export.display(),
            bundle = bundle.display(),
            public = public.display(),
            port = a.mqtt_port,
            state = state.display(),
            metrics = a.metrics,
            console = a.console,
            users = users.display()
        ),
    )?;
    let mut daemon = DaemonProcess::spawn(&exe, &config, &dir.join("daemon.log"))?;
    let t = Instant::now();
    while http_get(&a.metrics, "/health/live").is_none_or(|b| !b.contains("live")) {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("the daemon did not come up; see {}", dir.join("daemon.log").display());
        }
        if daemon.exited() {
            bail!("the daemon exited; see {}", dir.join("daemon.log").display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let inbox = subscribe(a.mqtt_port)?;
    let (status, _) = wait_message(&inbox, Duration::from_secs(10), |t, _| t.ends_with("/status"))?;
    println!(
        "      daemon online; serving bundle {} ({})",
        status["bundle"]["id"].as_str().unwrap_or("?"),
        status["bundle"]["version"].as_str().unwrap_or("?")
    );
    println!(
        "      console page: http://{}/  (user demo, password {password}; the cards of this run appear there live)",
        a.console
    );

    println!("\n[4/8] replaying three held-out test examinations into the export folder");
    let tests = test_rows(&cohort)?;
    if tests.len() < 3 {
        bail!("the synthetic test cohort has fewer than three examinations");
    }
    let pace = Duration::from_millis(5);
    let mut last_files = Vec::new();
    // (a) atomic writes
    let (id_a, ln_a, row_a) = &tests[0];
    replay(&cohort.join(id_a), &export.join(id_a), pace, ReplayStyle::Atomic)?;
    last_files.push((
        id_a.clone(),
        Instant::now(),
        "written atomically (temporary name, then rename)",
    ));
    // (b) one file first appears truncated and is completed last
    let (id_b, _, _) = &tests[1];
    replay(&cohort.join(id_b), &export.join(id_b), pace, ReplayStyle::Partial)?;
    last_files.push((
        id_b.clone(),
        Instant::now(),
        "one file written partially first, completed last",
    ));
    // (c) the ROI arrives late
    let (id_c, _, _) = &tests[2];
    replay(
        &cohort.join(id_c).join("dce"),
        &export.join(id_c).join("dce"),
        pace,
        ReplayStyle::Atomic,
    )?;
    println!("      {id_c}: images exported, ROI withheld …");
    let (ev, _) = wait_message(&inbox, Duration::from_secs(60), |t, v| {
        t.ends_with("/event") && v["event"] == "waiting_for_roi"
    })?;
    println!(
        "      event: {} — {}",
        ev["event"].as_str().unwrap_or(""),
        ev["detail"].as_str().unwrap_or("")
    );
    replay(
        &cohort.join(id_c).join("roi"),
        &export.join(id_c).join("roi"),
        pace,
        ReplayStyle::Atomic,
    )?;
    last_files.push((id_c.clone(), Instant::now(), "ROI (DICOM SEG) arrived late"));

    println!("\n[5/8] risk messages on alnrisk/v1/demo-site/demo-box/result (a department dashboard's view)");
    let secret_key = std::fs::read_to_string(state.join("study-key.secret"))?;
    let secret_bytes = hex::decode(secret_key.trim())?;
    let study_key = |id: &str| -> anyhow::Result<String> {
        let files = alnrisk::ingest::list_files(&cohort.join(id).join("dce"))?;
        let first = files.first().context("empty examination")?;
        let uid = alnrisk::ingest::header::read_instance(first)?.study_uid;
        Ok(alnrisk::daemon::payload::StudyKey::of(&secret_bytes, &uid)
            .as_str()
            .to_string())
    };
    let mut first_a = None;
    for (id, written, how) in &last_files {
        let key = study_key(id)?;
        let (msg, at) = wait_message(&inbox, Duration::from_secs(300), |t, v| {
            t.ends_with("/result") && v["kind"] == "result" && v["study_key"] == key.as_str()
        })?;
        summary(&format!("{id}: {how}"), &msg, Some(*written), at);
        if id == id_a {
            first_a = Some(msg);
        }
    }

    // the report's other factors, from the cohort table (what the radiologist's MRI report says)
    let mut factors = serde_json::Map::new();
    for n in needs.iter().filter(|n| !n.is_ln()) {
        let text = row_a.get(&n.column).cloned().unwrap_or_default();
        let value = match n.kind {
            alnrisk::model::reported::FactorKind::Number => text
                .parse::<f64>()
                .map(serde_json::Value::from)
                .unwrap_or(serde_json::Value::String(text)),
            alnrisk::model::reported::FactorKind::Level { .. } => serde_json::Value::String(text),
        };
        factors.insert(n.column.clone(), value);
    }
    let said: Vec<String> = factors.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "\n[6/8] the radiologist's report for {id_a} arrives on cmd/ln-status: MRI LN read {ln_a}{}",
        said.iter().map(|s| format!(", {s}")).collect::<String>()
    );
    let key_a = study_key(id_a)?;
    let mut body = serde_json::json!({"study_key": key_a, "mri_ln_status": ln_a});
    if !factors.is_empty() {
        body["factors"] = serde_json::Value::Object(factors);
    }
    let body = body.to_string();
    let sent = Instant::now();
    inbox.publish("alnrisk/v1/demo-site/demo-box/cmd/ln-status", &body)?;
    let (update, at) = wait_message(&inbox, Duration::from_secs(30), |t, v| {
        t.ends_with("/result") && v["kind"] == "update" && v["study_key"] == key_a.as_str()
    })?;
    summary(&format!("{id_a}: updated with the LN read"), &update, None, at);
    replaces(&update, first_a.as_ref(), "the read was sent", at.duration_since(sent))?;

    println!("\n[7/8] the radiologist corrects the outline of {id_a}: a revised SEG (one pixel tighter, drawn later)");
    let roi_dir = export.join(id_a).join("roi");
    let part = roi_dir.join("seg-revised.part");
    alnrisk::synth::revision::write_revised_seg(
        &cohort.join(id_a).join("roi/seg.dcm"),
        &part,
        &format!("demo/{id_a}/revision-1"),
        "110000",
        1,
    )?;
    std::fs::rename(&part, roi_dir.join("seg-revised.dcm"))?;
    let sent = Instant::now();
    let (revision, at) = wait_message(&inbox, Duration::from_secs(60), |t, v| {
        t.ends_with("/result") && v["kind"] == "revision" && v["study_key"] == key_a.as_str()
    })?;
    summary(
        &format!("{id_a}: computed again with the revised ROI"),
        &revision,
        None,
        at,
    );
    replaces(
        &revision,
        first_a.as_ref(),
        "the file was written",
        at.duration_since(sent),
    )?;

    println!("\n[8/8] metrics snapshot (http://{}/metrics)", a.metrics);
    // The broker forwards a message before the daemon has counted its PUBACK: give the count a moment.
    let t = Instant::now();
    let mut metrics = String::new();
    while t.elapsed() < Duration::from_secs(5) {
        metrics = http_get(&a.metrics, "/metrics").unwrap_or_default();
        if metrics.contains("alnrisk_messages_published_total 5") && metrics.contains("alnrisk_outbox_depth 0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // (labelled counters that are still 0 exist so that alert rules see their first increase; not shown here)
    let mut hidden = 0;
    for line in metrics.lines() {
        if line.starts_with("alnrisk_") && !line.contains("_bucket") {
            if line.contains("_total{") && line.ends_with(" 0") {
                hidden += 1;
            } else {
                println!("      {line}");
            }
        }
    }
    println!("      ({hidden} labelled counters at 0 not shown)");
    let board = if a.stay {
        let board = start_board(&exe, &dir, &a, &users)?;
        println!("\nstaying up until Ctrl-C (user demo, password {password} on both pages):");
        println!("      console page      http://{}/", a.console);
        println!("      department board  http://{}/", a.board);
        println!("      metrics           http://{}/metrics", a.metrics);
        if let Some((id, _, _)) = tests.get(3) {
            println!(
                "      another examination: {} synth replay --from {} --to {}",
                exe.display(),
                cohort.join(id).display(),
                export.join(id).display()
            );
        }
        wait_for_ctrl_c()?;
        Some(board)
    } else {
        None
    };
    if let Some(mut board) = board {
        board.terminate();
    }
    let st = daemon.terminate().context("the daemon could not be waited for")?;
    println!(
        "\ndaemon stopped ({st}); demo done in {:.0} s. Everything above is SYNTHETIC. Files: {} (report: {})",
        started.elapsed().as_secs_f64(),
        dir.display(),
        dir.join("report/report.html").display()
    );
    Ok(ExitCode::SUCCESS)
}
