//! `alnrisk bench-soak`: months of running, compressed. One daemon, a real mosquitto that is restarted every
//! `--restart-every` results, and `--exams` small synthetic examinations (default 3,000 of 32×32×8×3) fed into the
//! export folder the way a console exports them, a few at a time, with the console's own clean-up of old exports.
//!
//! Measured and checked:
//! - **exactly once**: every examination's result arrives at a persistent-session subscriber, by message id (a
//!   QoS 1 redelivery across a broker restart is counted as a duplicate, which a dashboard drops by id; a missing
//!   result fails the run);
//! - **memory**: the daemon's RSS after the warm-up (`--warmup` results) and at the end; growth must stay under 10%;
//! - **descriptors**: open file descriptors after the warm-up and at the end; must not grow (± 4);
//! - **state**: the ledger's size (lines, bytes; compaction by `state.ledger_keep_days` is days away in a run of
//!   minutes, so it grows by one answer per examination, bounded by the retention), the result and event spools
//!   empty at the end.
//!
//! The exit status is non-zero when a target is missed, so the short version (`--exams 300`) is a CI test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::demo::{DaemonProcess, http_get};
use alnrisk::daemon::listen::{Listener, persistent_session};
use alnrisk::daemon::payload::StudyKey;
use alnrisk::synth::cohort::{CohortSpec, draw_patient, write_patient};
use alnrisk::synth::phantom::PhantomSpec;

/// Options of `alnrisk bench-soak`.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// Working folder (default: under the system's temporary folder; emptied first).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Examinations pushed through the daemon.
    #[arg(long, default_value_t = 3000)]
    pub exams: usize,
    /// The broker is restarted each time this many more results have arrived.
    #[arg(long, default_value_t = 500)]
    pub restart_every: usize,
    /// Results before the first RSS and descriptor reading.
    #[arg(long, default_value_t = 200)]
    pub warmup: usize,
    /// Examinations in the export folder not answered yet, at most (the console's pace).
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// In-plane matrix of the examinations.
    #[arg(long, default_value_t = 32)]
    pub matrix: usize,
    /// Slices of the examinations.
    #[arg(long, default_value_t = 8)]
    pub slices: usize,
    /// A signed bundle to serve (default: fit one here on 40 examinations of the same size, VGG width 1/8).
    #[arg(long, requires = "public_key")]
    pub bundle: Option<PathBuf>,
    /// Its public key.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
}

/// A mosquitto on loopback with persistence, stopped and started at will.
struct Broker {
    conf: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn new(dir: &Path) -> anyhow::Result<Broker> {
        let port = free_port()?;
        let data = dir.join("broker");
        std::fs::create_dir_all(&data)?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "per_listener_settings false\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 listener {port} 127.0.0.1\nmax_queued_messages 100000\n",
                data.display()
            ),
        )?;
        let mut b = Broker {
            conf,
            port,
            child: None,
        };
        b.start()?;
        Ok(b)
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new("mosquitto");
        cmd.arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // as root, mosquitto would drop to its own user and lose its persistence folder
        if running_as_root() {
            let text = std::fs::read_to_string(&self.conf)?;
            if !text.starts_with("user root") {
                std::fs::write(&self.conf, format!("user root\n{text}"))?;
            }
        }
        self.child = Some(
            cmd.spawn()
                .context("mosquitto must be installed (apt-get install mosquitto)")?,
        );
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                bail!("mosquitto did not listen on {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// SIGTERM (mosquitto saves its persistence), then wait.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether this process runs as root (uid 0 owns `/proc/self`).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// (RSS in KiB, open descriptors) of process `pid`.
fn rss_and_fds(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// The persistent-session subscriber on `alnrisk/#` (its subscription and queued messages survive a restart).
fn subscriber(port: u16) -> anyhow::Result<Listener> {
    let id = format!("alnrisk-soak-{}", std::process::id());
    Listener::connect(persistent_session(&id, "127.0.0.1", port), "alnrisk/#")
        .context("the subscriber could not connect")
}

/// Message ids of the results received so far, by study key, and how many results in all.
fn results_by_study(l: &Listener) -> (BTreeMap<String, BTreeSet<String>>, usize) {
    let mut by = BTreeMap::<String, BTreeSet<String>>::new();
    let all = l.of("result");
    for r in &all {
        if let (Some(k), Some(id)) = (r["study_key"].as_str(), r["message_id"].as_str()) {
            by.entry(k.to_string()).or_default().insert(id.to_string());
        }
    }
    (by, all.len())
}

fn fit_bundle(exe: &Path, dir: &Path, a: &SoakArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    let run = |args: &[String]| -> anyhow::Result<()> {
        let st = Command::new(exe).args(args).stdout(Stdio::null()).status()?;
        if !st.success() {
            bail!("alnrisk {} failed", args.join(" "));
        }
        Ok(())
    };
    let cohort = dir.join("fit-cohort");
    let s = |v: &str| v.to_string();
    run(&[
        s("synth"),
        s("--patients"),
        s("40"),
        s("--seed"),
        s("7"),
        s("--matrix"),
        a.matrix.to_string(),
        s("--slices"),
        a.slices.to_string(),
        s("--out"),
        cohort.display().to_string(),
    ])?;
    alnrisk::model::bundle::keygen(&dir.join("signing"))?;
    let bundle = dir.join("bundle");
    run(&[
        s("fit"),
        s("--cohort"),
        cohort.join("cohort.csv").display().to_string(),
        s("--out"),
        bundle.display().to_string(),
        s("--key"),
        dir.join("signing.key").display().to_string(),
        s("--vgg-scale"),
        s("8"),
        s("--views"),
        s("1"),
        s("--epochs"),
        s("2"),
        s("--clinical-candidates"),
        s(alnrisk::model::predict::MRI_LN),
        s("--device"),
        s("cpu"),
    ])?;
    Ok((bundle, dir.join("signing.pub")))
}

/// Run the soak.
pub fn run(a: SoakArgs) -> anyhow::Result<ExitCode> {
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("alnrisk-bench-soak-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let (bundle, public) = match (&a.bundle, &a.public_key) {
        (Some(b), Some(k)) => (b.clone(), k.clone()),
        _ => {
            eprintln!(
                "fitting a bundle (40 synthetic examinations of {}×{}×{}) …",
                a.matrix, a.matrix, a.slices
            );
            fit_bundle(&exe, &dir, &a)?
        }
    };
    let mut broker = Broker::new(&dir)?;
    let sub = subscriber(broker.port)?;
    let (export, staging, state) = (dir.join("export"), dir.join("staging"), dir.join("state"));
    for d in [&export, &staging, &state] {
        std::fs::create_dir_all(d)?;
    }
    let secret = "5a".repeat(32);
    std::fs::write(dir.join("secret"), &secret)?;
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let config = dir.join("soak.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nsite = \"soak\"\ndevice = \"box\"\n[watch]\nexport_dir = \"{}\"\npoll_interval_ms = 500\nstable_ms = 300\n\
             [assemble]\nquiet_period_s = 1.0\nroi_wait_s = 30.0\n[[select]]\nname = \"dce\"\nmodality = \"MR\"\n\
             min_temporal_positions = 2\n[model]\nbundle = \"{}\"\npublic_key = \"{}\"\ndevice = \"cpu\"\n\
             [mqtt]\nbroker = \"external\"\nhost = \"127.0.0.1\"\nport = {}\nreconnect_ms = 300\n\
             [phi]\nstudy_key_secret_file = \"{}\"\n[state]\ndir = \"{}\"\nmin_free_mb = 1\n[metrics]\nlisten = \"{metrics}\"\n",
            export.display(),
            bundle.display(),
            public.display(),
            broker.port,
            dir.join("secret").display(),
            state.display()
        ),
    )?;
    let log = dir.join("daemon.log");
    let mut daemon = DaemonProcess::spawn(&exe, &config, &log)?;
    let t = Instant::now();
    while http_get(&metrics, "/health/live").is_none_or(|b| !b.contains("live")) {
        if t.elapsed() > Duration::from_secs(60) || daemon.exited() {
            bail!("the daemon did not come up; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = daemon.id();

    let spec = CohortSpec {
        patients: a.exams,
        seed: 9100,
        image: PhantomSpec {
            matrix: a.matrix,
            slices: a.slices,
            ..PhantomSpec::default()
        },
        roi_jitter: false,
        ..CohortSpec::default()
    };
    let key_secret = hex::decode(&secret)?;
    let mut expected: Vec<String> = Vec::with_capacity(a.exams);
    let mut exported: Vec<(String, PathBuf)> = Vec::new();
    let (mut fed, mut restarts, mut next_restart) = (0usize, 0usize, a.restart_every);
    let mut warm: Option<(u64, usize)> = None;
    let started = Instant::now();
    let mut last_progress = (0usize, Instant::now());
    loop {
        let (by_study, _) = results_by_study(&sub);
        let answered = expected.iter().filter(|k| by_study.contains_key(*k)).count();
        if answered == a.exams {
            break;
        }
        if daemon.exited() {
            bail!("the daemon exited; see {}", log.display());
        }
        if answered > last_progress.0 {
            last_progress = (answered, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(120) {
            bail!(
                "no new result for 2 minutes at {answered} of {} (see {})",
                a.exams,
                log.display()
            );
        }
        if warm.is_none() && answered >= a.warmup.min(a.exams) {
            warm = rss_and_fds(pid);
        }
        if a.restart_every > 0 && answered >= next_restart && answered < a.exams {
            broker.stop();
            std::thread::sleep(Duration::from_millis(1500));
            broker.start()?;
            restarts += 1;
            next_restart += a.restart_every;
        }
        // the console: export the next examinations while few are waiting, and delete old answered exports
        while fed < a.exams && fed - answered.min(fed) < a.in_flight {
            let (patient, mut rng) = draw_patient(spec.seed, fed, false);
            let (series_dir, _, _) = write_patient(&spec, &patient, &mut rng, &staging)?;
            let uid = alnrisk::ingest::header::read_instance(
                alnrisk::ingest::list_files(&series_dir)?
                    .first()
                    .context("a synthetic series has files")?,
            )?
            .study_uid;
            let key = StudyKey::of(&key_secret, &uid).as_str().to_string();
            let dest = export.join(&patient.id);
            std::fs::rename(staging.join(&patient.id), &dest)?;
            expected.push(key.clone());
            exported.push((key, dest));
            fed += 1;
        }
        exported.retain(|(key, path)| {
            let keep = !by_study.contains_key(key);
            if !keep {
                let _ = std::fs::remove_dir_all(path);
            }
            keep
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    // let the last acknowledgements land, then read the state
    std::thread::sleep(Duration::from_secs(2));
    let end = rss_and_fds(pid).context("the daemon's /proc entry")?;
    let warm = warm.unwrap_or(end);
    let (by_study, results) = results_by_study(&sub);
    let missing = expected.iter().filter(|k| !by_study.contains_key(*k)).count();
    let unique: usize = by_study.values().map(|ids| ids.len()).sum();
    let duplicates = results - unique;
    let extra = by_study.values().filter(|ids| ids.len() > 1).count();
    let ledger = std::fs::read_to_string(state.join("ledger.jsonl")).unwrap_or_default();
    let spool_left = |d: &str| {
        alnrisk::ingest::list_files(&state.join(d))
            .map(|f| f.len())
            .unwrap_or(0)
    };
    let (spool, events_spool) = (spool_left("spool"), spool_left("events"));
    daemon.terminate();
    broker.stop();

    let growth = (end.0 as f64 - warm.0 as f64) / warm.0 as f64;
    let fd_growth = end.1 as i64 - warm.1 as i64;
    println!(
        "soak: {} examinations of {}×{}×{}×3, broker restarted {restarts}× (every {} results), {:.0} s ({:.1} examinations/s)",
        a.exams,
        a.matrix,
        a.matrix,
        a.slices,
        a.restart_every,
        elapsed.as_secs_f64(),
        a.exams as f64 / elapsed.as_secs_f64()
    );
    println!(
        "| quantity | after warm-up ({} results) | at the end | target |",
        a.warmup
    );
    println!("|---|---|---|---|");
    println!(
        "| RSS | {:.1} MiB | {:.1} MiB ({:+.1}%) | growth < 10% |",
        warm.0 as f64 / 1024.0,
        end.0 as f64 / 1024.0,
        100.0 * growth
    );
    println!(
        "| open descriptors | {} | {} ({fd_growth:+}) | flat (±4) |",
        warm.1, end.1
    );
    println!(
        "| ledger | | {} lines, {} bytes ({:.0} bytes/examination) | one answer per examination within state.ledger_keep_days |",
        ledger.lines().count(),
        ledger.len(),
        ledger.len() as f64 / a.exams as f64
    );
    println!("| spools left | | results {spool}, events {events_spool} | 0 |");
    println!(
        "| results at the subscriber | | {results} received, {unique} distinct message ids, {missing} missing, {duplicates} QoS 1 redeliveries | every examination once by message id |"
    );
    let mut failed = Vec::new();
    if missing > 0 {
        failed.push(format!("{missing} results missing"));
    }
    if extra > 0 {
        failed.push(format!("{extra} studies answered under more than one message id"));
    }
    if growth >= 0.10 {
        failed.push(format!("RSS grew {:.1}%", 100.0 * growth));
    }
    if fd_growth.abs() > 4 {
        failed.push(format!("descriptors changed by {fd_growth}"));
    }
    if spool + events_spool > 0 {
        failed.push("spools not empty at the end".into());
    }
    if ledger.lines().count() < a.exams {
        failed.push("the ledger lacks answers".into());
    }
    if failed.is_empty() {
        println!("soak: every target met");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("soak: FAILED: {}", failed.join("; "));
        Ok(ExitCode::FAILURE)
    }
}
