//! `alnrisk bench-e2e`: the daemon's speed and memory, measured as a user sees them.
//!
//! - **Latency**: time from the last file of an examination landing in the export folder (its rename into place)
//!   to its result message arriving at a subscriber on the same loopback broker (the daemon's PUBACK comes back
//!   on the same hop). Each replay runs against a freshly started daemon with empty state, so every replay
//!   really computes; p50 and p95 over `--replays` replays, for the real UCSF-BR-06 examination (completion by the
//!   quiet period: its tags give no instance count) and a synthetic 256×256×60×3 examination.
//! - **To people**: from the answer's commit (its `computed` timestamp, taken just before the spool write and its
//!   fsync) to the result message at the MQTT subscriber, and to its card on the console page in headless Chromium
//!   (WebDriver; the page's own SSE stream, the time taken in the page when the answered card is in the DOM). Both
//!   on this machine's clock. Without Chromium and chromedriver the page column says why it is empty.
//! - **Throughput / memory**: `--queue` examinations placed in the export folder at once, then the daemon started;
//!   time until every result has arrived, and the daemon's peak RSS (VmHWM) with the Q8 model.
//!
//! The bundle is fitted here on a small synthetic cohort with the full-size VGG-16 (the daemon serves its Q8_0
//! file), unless `--bundle` names one. Every number printed is measured in this run.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use super::demo::{DaemonProcess, http_get, subscribe, wait_message};
use alnrisk::radiomics::firstorder::percentile_sorted as percentile;
use alnrisk::synth::replay::{ReplayStyle, replay};

/// Options of `alnrisk bench-e2e`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Working folder (default: under the system's temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Replays per examination for the latency percentiles.
    #[arg(long, default_value_t = 20)]
    pub replays: usize,
    /// Examinations queued at once for the throughput run.
    #[arg(long, default_value_t = 20)]
    pub queue: usize,
    /// A signed bundle to serve (default: fit one here with the full-size VGG-16).
    #[arg(long, requires = "public_key")]
    pub bundle: Option<PathBuf>,
    /// Its public key.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Quiet period that completes a series without an instance count (s).
    #[arg(long, default_value_t = 1.0)]
    pub quiet_period: f64,
    /// Device for the network: cpu, auto, cuda.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// The UCSF-BR-06 examination folder (default: tests/data/… of the working directory or of the source tree).
    #[arg(long)]
    pub ucsf: Option<PathBuf>,
    /// Synthetic examination size (matrix, slices).
    #[arg(long, default_value_t = 256)]
    pub matrix: usize,
    /// Slices of the synthetic examination.
    #[arg(long, default_value_t = 60)]
    pub slices: usize,
}

struct Run {
    daemon: DaemonProcess,
    export: PathBuf,
    metrics: String,
    port: u16,
    console: String,
}

/// The console page's login of the bench: user `bench`, a password made for this run.
struct PageLogin {
    users: PathBuf,
    password: String,
}

/// Log in to the console page at `addr` and arm a watch: the time (Unix ms, the page's clock) at which a card of an
/// answered series first is in the page, in `window.__answeredAt`.
fn watch_page(b: &alnrisk::webdriver::Browser, addr: &str, login: &PageLogin) -> alnrisk::Result<()> {
    b.goto(&format!("http://{addr}/login"))?;
    b.type_into("#user", "bench")?;
    b.type_into("#password", &login.password)?;
    b.click("#login")?;
    b.wait_for(
        "the console page live",
        Duration::from_secs(20),
        "const c = document.querySelector('#connection'); return c && c.textContent === 'live'",
    )?;
    b.eval(
        "window.__answeredAt = null;
         const seen = () => { if (window.__answeredAt === null && document.querySelector('section.card[data-state=answered]'))
           window.__answeredAt = performance.timeOrigin + performance.now(); };
         new MutationObserver(seen).observe(document.getElementById('cards'), { childList: true, subtree: true, attributes: true });
         seen(); return true;",
    )
    .map(drop)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start(
    exe: &Path,
    dir: &Path,
    bundle: &Path,
    public: &Path,
    a: &BenchArgs,
    login: &PageLogin,
) -> anyhow::Result<Run> {
    let _ = std::fs::remove_dir_all(dir);
    let export = dir.join("export");
    std::fs::create_dir_all(&export)?;
    let (port, metrics) = (free_port()?, format!("127.0.0.1:{}", free_port()?));
    let console = format!("127.0.0.1:{}", free_port()?);
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nsite = \"bench\"\ndevice = \"box\"\n[watch]\nexport_dir = \"{}\"\npoll_interval_ms = 200\nstable_ms = 500\n\
             [assemble]\nquiet_period_s = {}\n[model]\nbundle = \"{}\"\npublic_key = \"{}\"\ndevice = \"{}\"\n\
             [mqtt]\nbroker = \"embedded\"\nport = {port}\n[state]\ndir = \"{}\"\n[metrics]\nlisten = \"{metrics}\"\n\
             [console]\nlisten = \"{console}\"\npassword_file = \"{}\"\n",
            export.display(),
            a.quiet_period,
            bundle.display(),
            public.display(),
            a.device,
            dir.join("state").display(),
            login.users.display()
        ),
    )?;
    Ok(Run {
        daemon: DaemonProcess::spawn(exe, &config, &dir.join("daemon.log"))?,
        export,
        metrics,
        port,
        console,
    })
}

fn ready(run: &mut Run, log: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    while http_get(&run.metrics, "/health/live").is_none_or(|b| !b.contains("live")) {
        if t.elapsed() > Duration::from_secs(60) || run.daemon.exited() {
            bail!("the daemon did not come up; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One examination's latency row.
struct Row {
    name: String,
    p50: f64,
    p95: f64,
    compute50: f64,
    /// Answer committed → MQTT subscriber, p50 and p95 (ms).
    mqtt: (f64, f64),
    /// Answer committed → card on the page, p50, p95 (ms) and how many cards were timed.
    page: (f64, f64, usize),
    n: usize,
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// Run the benchmark.
pub fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("alnrisk-bench-e2e-{}", std::process::id())));
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let run_cmd = |args: &[String]| -> anyhow::Result<()> {
        let st = Command::new(&exe).args(args).stdout(Stdio::null()).status()?;
        if !st.success() {
            bail!("alnrisk {} failed", args.join(" "));
        }
        Ok(())
    };
    // Examinations.
    let synth = dir.join("exams");
    if !synth.join("cohort.csv").exists() {
        eprintln!(
            "synthesising {} examinations of {}×{}×{}×3 …",
            a.queue.max(1),
            a.matrix,
            a.matrix,
            a.slices
        );
        run_cmd(&[
            "synth".into(),
            "--patients".into(),
            a.queue.max(1).to_string(),
            "--seed".into(),
            "21".into(),
            "--matrix".into(),
            a.matrix.to_string(),
            "--slices".into(),
            a.slices.to_string(),
            "--out".into(),
            synth.display().to_string(),
        ])?;
    }
    // Bundle.
    let (bundle, public) = match (&a.bundle, &a.public_key) {
        (Some(b), Some(k)) => (b.clone(), k.clone()),
        _ => {
            let b = dir.join("bundle");
            let (secret, public) = (dir.join("signing.key"), dir.join("signing.pub"));
            if !b.join("bundle.json").exists() {
                eprintln!("fitting a bundle (40 synthetic patients, full-size VGG-16, 2 epochs) …");
                let cohort = dir.join("fit-cohort");
                run_cmd(&[
                    "synth".into(),
                    "--patients".into(),
                    "40".into(),
                    "--seed".into(),
                    "7".into(),
                    "--matrix".into(),
                    "96".into(),
                    "--slices".into(),
                    "24".into(),
                    "--out".into(),
                    cohort.display().to_string(),
                ])?;
                let _ = std::fs::remove_file(&secret);
                let _ = std::fs::remove_file(&public);
                alnrisk::model::bundle::keygen(&dir.join("signing"))?;
                run_cmd(
                    &[
                        "fit",
                        "--cohort",
                        &cohort.join("cohort.csv").display().to_string(),
                        "--out",
                        &b.display().to_string(),
                        "--key",
                        &secret.display().to_string(),
                        "--clinical-candidates",
                        alnrisk::model::predict::MRI_LN,
                        "--epochs",
                        "2",
                        "--views",
                        "1",
                        "--device",
                        if a.device == "cpu" { "cpu" } else { "auto" },
                    ]
                    .map(String::from),
                )?;
            }
            (b, public)
        }
    };
    let rel = Path::new("tests/data/tcia-breast-mri-nact-pilot/UCSF-BR-06");
    let ucsf = a.ucsf.clone().unwrap_or_else(|| {
        if rel.is_dir() {
            rel.to_path_buf()
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
        }
    });
    let first_syn = synth.join("SYN0001");
    let login = PageLogin {
        users: dir.join("console-users"),
        password: hex::encode(alnrisk::rng::os_random::<9>()?),
    };
    let _ = std::fs::remove_file(&login.users);
    alnrisk::web::login::set_user(&login.users, "bench", &login.password)?;
    let browser = match alnrisk::webdriver::Browser::start(&dir.join("chromium-profile")) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("no console-page timing: {e}");
            None
        }
    };
    let mut rows = Vec::new();
    for (name, exam) in [
        ("UCSF-BR-06 (real, 256×256×60×3, SEG)".to_string(), ucsf.clone()),
        (
            format!("synthetic {m}×{m}×{}×3 (SEG)", a.slices, m = a.matrix),
            first_syn.clone(),
        ),
    ] {
        if !exam.is_dir() {
            bail!("{} is missing", exam.display());
        }
        let mut lat = Vec::new();
        let mut e2e_daemon = Vec::new();
        let (mut to_mqtt, mut to_page) = (Vec::new(), Vec::new());
        for i in 0..a.replays {
            let rdir = dir.join("run");
            let mut r = start(&exe, &rdir, &bundle, &public, &a, &login)?;
            ready(&mut r, &rdir.join("daemon.log"))?;
            let inbox = subscribe(r.port)?;
            let page = browser.as_ref().filter(|b| match watch_page(b, &r.console, &login) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("  console page not watched this replay: {e}");
                    false
                }
            });
            replay(
                &exam,
                &r.export.join(format!("exam{i}")),
                Duration::ZERO,
                ReplayStyle::Atomic,
            )?;
            let landed = Instant::now();
            let (msg, at) = wait_message(&inbox, Duration::from_secs(300), |t, _| t.ends_with("/result"))
                .with_context(|| format!("no result; see {}", rdir.join("daemon.log").display()))?;
            lat.push(at.duration_since(landed).as_secs_f64());
            e2e_daemon.push(msg["timing_ms"]["total"].as_f64().unwrap_or(f64::NAN) / 1e3);
            // the MQTT arrival on the wall clock, and the answer's commit
            let arrived_ms = unix_ms(SystemTime::now()) - at.elapsed().as_secs_f64() * 1e3;
            let committed = msg["timestamps"]["computed"]
                .as_str()
                .and_then(alnrisk::time::unix_ms_of_rfc3339);
            if let Some(c) = committed {
                to_mqtt.push(arrived_ms - c);
                if let Some(b) = page {
                    match b.wait_for(
                        "the answered card",
                        Duration::from_secs(30),
                        "return window.__answeredAt",
                    ) {
                        Ok(v) => to_page.extend(v.as_f64().map(|t| t - c)),
                        Err(e) => eprintln!("  the card did not appear: {e}"),
                    }
                }
            }
            r.daemon.terminate();
            eprintln!(
                "  {name} replay {}: {:.3} s; committed → MQTT {:.0} ms, → card {}",
                i + 1,
                lat[i],
                to_mqtt.last().copied().unwrap_or(f64::NAN),
                to_page.last().map_or("-".to_string(), |t| format!("{t:.0} ms"))
            );
        }
        if lat.is_empty() {
            continue;
        }
        for v in [&mut lat, &mut e2e_daemon, &mut to_mqtt, &mut to_page] {
            v.sort_by(f64::total_cmp);
        }
        let p = |v: &[f64], q: f64| if v.is_empty() { f64::NAN } else { percentile(v, q) };
        rows.push(Row {
            name,
            p50: p(&lat, 50.0),
            p95: p(&lat, 95.0),
            compute50: p(&e2e_daemon, 50.0),
            mqtt: (p(&to_mqtt, 50.0), p(&to_mqtt, 95.0)),
            page: (p(&to_page, 50.0), p(&to_page, 95.0), to_page.len()),
            n: lat.len(),
        });
    }
    // Throughput and memory: every synthetic examination queued before the daemon starts.
    let qdir = dir.join("queue-run");
    let queued = dir.join("queued-export");
    let _ = std::fs::remove_dir_all(&queued);
    for k in 1..=a.queue {
        replay(
            &synth.join(format!("SYN{k:04}")),
            &queued.join(format!("q{k}")),
            Duration::ZERO,
            ReplayStyle::Atomic,
        )?;
    }
    let mut r = start(&exe, &qdir, &bundle, &public, &a, &login)?;
    ready(&mut r, &qdir.join("daemon.log"))?;
    let inbox = subscribe(r.port)?;
    // All of them land at once: one rename of the prepared folder into the export folder.
    let t0 = Instant::now();
    std::fs::rename(&queued, r.export.join("queued"))?;
    let t = Instant::now();
    let mut rss_peak = 0.0f64;
    loop {
        let n = inbox.of("result").len();
        if let Some(mb) = peak_rss_mb(r.daemon.id()) {
            rss_peak = rss_peak.max(mb);
        }
        if n >= a.queue {
            break;
        }
        if t.elapsed() > Duration::from_secs(1800) {
            bail!("only {n} of {} results after 30 minutes", a.queue);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let total = t0.elapsed().as_secs_f64();
    r.daemon.terminate();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nalnrisk bench-e2e — {cores} CPU cores, device = {}, quiet period {} s, Q8_0 VGG-16",
        a.device, a.quiet_period
    );
    println!("\n| examination | replays | last file → result p50 | p95 | compute (load+features+nomogram) p50 |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} s | {:.2} s | {:.2} s |",
            r.name, r.n, r.p50, r.p95, r.compute50
        );
    }
    println!(
        "\n| examination | answer committed → MQTT subscriber p50 | p95 | → card on the console page p50 | p95 | cards timed |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} |",
            r.name, r.mqtt.0, r.mqtt.1, r.page.0, r.page.1, r.page.2
        );
    }
    println!(
        "\n| queued at once | all results after | per examination | daemon peak RSS (VmHWM) |\n|---|---|---|---|\n| {} synthetic {}×{}×{}×3 | {total:.1} s | {:.2} s | {rss_peak:.0} MB |",
        a.queue,
        a.matrix,
        a.matrix,
        a.slices,
        total / a.queue.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}
