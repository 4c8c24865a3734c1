//! The console page: what the MRI technologist sees on the console's screen, served by `alnrisk serve` when the
//! configuration has a `[console]` table.
//!
//! - [`card`]: one [`Card`] per series of the day (waiting for its ROI, computing, answered, failed; updated and
//!   revised with what each answer replaces), built from the [`ConsoleNote`]s the core sends as things happen.
//! - [`Cards`]: the day's cards, kept in `console.jsonl` in the state folder (appended at every change, rewritten
//!   at start with only the last [`DAY_S`] seconds), so that a restarted daemon shows them again.
//! - [`http`]: the page, its login, the Server-Sent Events that push every change, and the LN read a person
//!   enters, which takes the same path as `cmd/ln-status`.
//!
//! The page is the technologist's own screen: with `console.show_identifiers` it names the patient. Nothing of
//! it goes to MQTT.

pub mod card;
pub mod http;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::card::{Card, CardState, ConsoleNote, SeriesShown};
use super::payload::SeriesKey;

/// How long a card stays on the page after its last change (s): the day's examinations.
pub const DAY_S: u64 = 24 * 3600;

/// The most cards held (the oldest go first): a busy scanner does some 40 examinations a day.
pub const MAX_CARDS: usize = 200;

/// The journal's file name in the state folder.
pub const JOURNAL: &str = "console.jsonl";

/// The day's cards and their journal.
pub struct Cards {
    by_series: BTreeMap<SeriesKey, Card>,
    journal: PathBuf,
    file: Option<std::fs::File>,
}

impl Cards {
    /// The cards of `journal` changed in the last [`DAY_S`] before `now` (Unix s); the journal is rewritten with
    /// only those (and without patients unless `identifiers`). An unreadable line is skipped; a journal that
    /// cannot be written leaves the page working from memory (logged).
    pub fn open(journal: &Path, now: u64, identifiers: bool) -> Cards {
        let mut by_series: BTreeMap<SeriesKey, Card> = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(journal) {
            for line in text.lines() {
                match serde_json::from_str::<Card>(line) {
                    Ok(mut c) if c.updated_unix + DAY_S > now => {
                        if !identifiers {
                            c.shown.patient = None;
                        }
                        by_series.insert(c.series_key.clone(), c);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("console journal: a line is unreadable ({:?}), skipped", e.classify()),
                }
            }
        }
        let mut cards = Cards {
            by_series,
            journal: journal.to_path_buf(),
            file: None,
        };
        cards.trim();
        cards.rewrite();
        cards
    }

    /// Cards in memory only (tests).
    pub fn in_memory() -> Cards {
        Cards {
            by_series: BTreeMap::new(),
            journal: PathBuf::new(),
            file: None,
        }
    }

    fn rewrite(&mut self) {
        if self.journal.as_os_str().is_empty() {
            return;
        }
        let mut text = String::new();
        for c in self.by_series.values() {
            if let Ok(line) = serde_json::to_string(c) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        if let Err(e) = super::fsio::write_durable(&self.journal, text.as_bytes()) {
            tracing::error!("console journal not rewritten: {}", e.neutral());
        }
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.journal)
            .map_err(|e| tracing::error!("console journal not opened: {}", e.kind()))
            .ok();
    }

    fn trim(&mut self) {
        while self.by_series.len() > MAX_CARDS {
            let oldest = self
                .by_series
                .iter()
                .min_by_key(|(_, c)| c.updated_unix)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.by_series.remove(&k),
                None => break,
            };
        }
    }

    /// Apply a note at `now` (RFC 3339, Unix s): the changed card, also appended to the journal.
    pub fn apply(&mut self, note: ConsoleNote, now: (String, u64)) -> Option<Card> {
        let key = match &note {
            ConsoleNote::Waiting { series_key, .. }
            | ConsoleNote::Computing { series_key, .. }
            | ConsoleNote::Failed { series_key, .. } => series_key.clone(),
            ConsoleNote::Answered { message, .. } => message.series_key.clone(),
        };
        let card = Card::apply(self.by_series.get(&key), note, now)?;
        if let (Some(f), Ok(line)) = (self.file.as_mut(), serde_json::to_string(&card)) {
            // not fsynced: the page's history, not a clinical record (the ledger and the spool are that)
            if let Err(e) = writeln!(f, "{line}") {
                tracing::error!("console journal not appended: {}", e.kind());
            }
        }
        self.by_series.insert(key, card.clone());
        self.trim();
        Some(card)
    }

    /// Every card changed in the last [`DAY_S`] before `now`, the newest first.
    pub fn snapshot(&self, now: u64) -> Vec<Card> {
        let mut v: Vec<Card> = self
            .by_series
            .values()
            .filter(|c| c.updated_unix + DAY_S > now)
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.since_unix
                .cmp(&a.since_unix)
                .then(b.updated_unix.cmp(&a.updated_unix))
        });
        v
    }
}

/// Notes the core may have on their way to the page; more are dropped (logged): the page is never a reason
/// for the core to wait.
pub const NOTE_QUEUE: usize = 256;

/// What `/api/info` says of the box and its bundle: the site and device, the bundle, the cutoff, the nomogram's
/// axes (each predictor's most points) and whether the deep features are from UNTRAINED weights.
pub fn info(cfg: &super::config::DaemonConfig, bundle: &crate::model::Bundle) -> serde_json::Value {
    let n = &bundle.manifest.nomogram;
    let predictors: Vec<serde_json::Value> = n
        .predictors
        .iter()
        .map(|q| {
            serde_json::json!({
                "name": q.name,
                "binary": q.binary,
                "max_points": q.coefficient.abs() * (q.max - q.min) * n.points_per_unit,
            })
        })
        .collect();
    let init = &bundle.manifest.vgg.init;
    serde_json::json!({
        "site": cfg.site.site,
        "device": cfg.site.device,
        "alnrisk_version": env!("CARGO_PKG_VERSION"),
        "bundle": {"id": bundle.manifest.bundle_id, "version": bundle.manifest.version, "sha256": bundle.sha256},
        "cutoff": n.cutoff,
        "predictors": predictors,
        "factors": crate::model::reported::needs(&bundle.manifest),
        "untrained": init.contains("NOT ImageNet-pretrained") || init.contains("He initialisation"),
        "show_identifiers": cfg.console.as_ref().is_some_and(|c| c.show_identifiers),
    })
}

/// Start the page `[console]` describes (`None` when there is none): bind, load the password file and the
/// session secret (`console-session.secret` in the state folder), open the journal, and serve. The sender is
/// the core's way to the page.
pub async fn start(
    cfg: &super::config::DaemonConfig,
    bundle: &crate::model::Bundle,
    ln_sink: http::LnSink,
) -> crate::error::Result<Option<(tokio::sync::mpsc::Sender<ConsoleNote>, tokio::task::JoinHandle<()>)>> {
    let Some(c) = &cfg.console else {
        return Ok(None);
    };
    let gate = Arc::new(crate::web::Gate {
        title: "alnrisk console",
        passwords: crate::web::login::PasswordFile::load(&c.password_file)?,
        sessions: crate::web::login::Sessions::new(
            super::payload::load_or_create_secret(&cfg.state.dir.join("console-session.secret"))?,
            (c.session_h * 3600.0) as u64,
        ),
        secure: c.tls.is_some(),
    });
    let cards = Cards::open(
        &cfg.state.dir.join(JOURNAL),
        crate::web::login::unix_now(),
        c.show_identifiers,
    );
    let tls = c
        .tls
        .as_ref()
        .map(|t| crate::web::server_tls(t, "console.tls"))
        .transpose()?;
    let console = http::Console::new(cards, gate, info(cfg, bundle), ln_sink);
    let (tx, rx) = tokio::sync::mpsc::channel(NOTE_QUEUE);
    tokio::spawn(console.clone().follow(rx));
    let task = crate::web::serve(&c.listen, tls, http::router(console), "console page").await?;
    Ok(Some((tx, task)))
}

#[cfg(test)]
mod tests;
