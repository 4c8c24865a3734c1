//! The durable outbox: every message that must reach the broker is written here (fsynced, one file per entry,
//! named by a sequence number) before it is published, and removed only after the broker's PUBACK. After an
//! outage or a restart the entries go out again in sequence order.
//!
//! Bounds: entry count and total bytes. A push that would cross either is refused with [`Push::Full`]; the caller
//! keeps the work (nothing computed is dropped) and raises a `spool_full` alarm. Entries are never deleted to
//! make room, and an entry older than the age bound raises a `spool_stale` alarm but stays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::fsio;
use crate::error::{Error, Result};

/// One spooled message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Sequence number (publish order).
    pub seq: u64,
    /// Topic suffix below the device prefix (`result`).
    pub topic: String,
    /// Message body (JSON).
    pub payload: String,
    /// Series it answers (HMAC), so a restart knows the series was done.
    pub series_key: String,
    /// The other members of a linked DCE set it answers (HMACs); empty for a single series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_keys: Vec<String>,
    /// Bundle sha256.
    pub bundle_sha256: String,
    /// Unix time it was spooled.
    pub created_unix: f64,
}

/// Bounds of the spool.
#[derive(Debug, Clone, Copy)]
pub struct OutboxBounds {
    /// Maximum entries.
    pub max_entries: usize,
    /// Maximum bytes on disk.
    pub max_bytes: u64,
    /// Age that raises an alarm.
    pub max_age: Duration,
}

/// Outcome of [`Outbox::push`].
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    /// Durably stored under this sequence number.
    Stored(u64),
    /// Refused: the spool is at a bound (named). Nothing was written and nothing was deleted.
    Full(String),
}

/// The spool folder and its index.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    bounds: OutboxBounds,
    next_seq: u64,
    entries: BTreeMap<u64, (u64, f64)>,
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Outbox {
    /// Open (or create) the spool in `dir`. Unreadable entries are renamed `*.corrupt`, kept, and reported.
    pub fn open(dir: &Path, bounds: OutboxBounds) -> Result<(Outbox, Vec<Error>)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut entries = BTreeMap::new();
        let mut problems = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = e.map_err(|e| Error::io(dir, e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.starts_with('.') {
                // A temporary file from a write that did not finish: its message was never acknowledged as
                // spooled, so the work that made it is redone (its inputs are still in the export folder).
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let parsed = stem.parse::<u64>().ok().and_then(|seq| {
                let text = std::fs::read(&path).ok()?;
                let entry: OutboxEntry = serde_json::from_slice(&text).ok()?;
                (entry.seq == seq).then_some((seq, text.len() as u64, entry.created_unix))
            });
            match parsed {
                Some((seq, len, created)) => {
                    entries.insert(seq, (len, created));
                }
                None => {
                    let corrupt = path.with_extension("json.corrupt");
                    let _ = std::fs::rename(&path, &corrupt);
                    problems.push(Error::Spool {
                        path: corrupt,
                        reason: "unreadable spool entry kept aside".into(),
                    });
                }
            }
        }
        let next_seq = entries.keys().next_back().map_or(1, |s| s + 1);
        Ok((
            Outbox {
                dir: dir.to_path_buf(),
                bounds,
                next_seq,
                entries,
            },
            problems,
        ))
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    /// Spool a message (durably) unless a bound would be crossed. `member_keys`: the other members of a linked
    /// DCE set, so a restart knows they were answered too.
    pub fn push(
        &mut self,
        topic: &str,
        payload: &str,
        series_key: &str,
        member_keys: &[String],
        bundle_sha256: &str,
    ) -> Result<Push> {
        let seq = self.next_seq;
        let entry = OutboxEntry {
            seq,
            topic: topic.into(),
            payload: payload.into(),
            series_key: series_key.into(),
            member_keys: member_keys.to_vec(),
            bundle_sha256: bundle_sha256.into(),
            created_unix: now_unix(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(|e| Error::Spool {
            path: self.dir.clone(),
            reason: e.to_string(),
        })?;
        if self.entries.len() + 1 > self.bounds.max_entries {
            return Ok(Push::Full(format!(
                "{} entries (max {})",
                self.entries.len(),
                self.bounds.max_entries
            )));
        }
        if self.bytes() + bytes.len() as u64 > self.bounds.max_bytes {
            return Ok(Push::Full(format!(
                "{} bytes (max {})",
                self.bytes(),
                self.bounds.max_bytes
            )));
        }
        fsio::write_durable(&self.path(seq), &bytes)?;
        self.entries.insert(seq, (bytes.len() as u64, entry.created_unix));
        self.next_seq += 1;
        Ok(Push::Stored(seq))
    }

    /// The oldest entry, read back from disk.
    pub fn head(&self) -> Result<Option<OutboxEntry>> {
        let Some((&seq, _)) = self.entries.iter().next() else {
            return Ok(None);
        };
        self.read(seq).map(Some)
    }

    /// Read one entry.
    pub fn read(&self, seq: u64) -> Result<OutboxEntry> {
        let path = self.path(seq);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&text).map_err(|e| Error::Spool {
            path,
            reason: e.to_string(),
        })
    }

    /// All entries in order.
    pub fn all(&self) -> Result<Vec<OutboxEntry>> {
        self.entries.keys().map(|&s| self.read(s)).collect()
    }

    /// Remove an entry once the broker acknowledged it.
    pub fn remove(&mut self, seq: u64) -> Result<()> {
        if self.entries.remove(&seq).is_some() {
            let path = self.path(seq);
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            fsio::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Entries waiting.
    pub fn depth(&self) -> usize {
        self.entries.len()
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.entries.values().map(|(b, _)| b).sum()
    }

    /// Whether the oldest entry is older than the age bound.
    pub fn stale(&self) -> bool {
        self.entries
            .values()
            .next()
            .is_some_and(|(_, created)| now_unix() - created > self.bounds.max_age.as_secs_f64())
    }

    /// Room for at least one more entry of `bytes`.
    pub fn has_room(&self, bytes: u64) -> bool {
        self.entries.len() < self.bounds.max_entries && self.bytes() + bytes <= self.bounds.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("alnrisk-outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn bounds(n: usize) -> OutboxBounds {
        OutboxBounds {
            max_entries: n,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn entries_survive_reopen_in_order_and_go_only_when_removed() {
        let d = tmp("reopen");
        let (mut o, p) = Outbox::open(&d, bounds(10)).unwrap();
        assert!(p.is_empty());
        assert_eq!(o.push("result", "{\"a\":1}", "s1", &[], "b").unwrap(), Push::Stored(1));
        let members = ["s2-phase2".to_string()];
        assert_eq!(
            o.push("result", "{\"a\":2}", "s2", &members, "b").unwrap(),
            Push::Stored(2)
        );
        drop(o);
        let (mut o, _) = Outbox::open(&d, bounds(10)).unwrap();
        assert_eq!(o.depth(), 2);
        assert_eq!(o.head().unwrap().unwrap().payload, "{\"a\":1}");
        o.remove(1).unwrap();
        let head = o.head().unwrap().unwrap();
        assert_eq!(
            (head.series_key.as_str(), head.member_keys.as_slice()),
            ("s2", &members[..])
        );
        assert_eq!(o.push("result", "{}", "s3", &[], "b").unwrap(), Push::Stored(3));
    }

    #[test]
    fn full_spool_refuses_and_deletes_nothing() {
        let d = tmp("full");
        let (mut o, _) = Outbox::open(&d, bounds(2)).unwrap();
        o.push("result", "1", "s1", &[], "b").unwrap();
        o.push("result", "2", "s2", &[], "b").unwrap();
        assert!(matches!(o.push("result", "3", "s3", &[], "b").unwrap(), Push::Full(_)));
        assert_eq!(o.depth(), 2);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        assert_eq!(
            o.all().unwrap().iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(),
            ["1", "2"]
        );
    }

    #[test]
    fn an_entry_past_the_age_bound_is_stale_but_kept() {
        let d = tmp("stale");
        let mut b = bounds(4);
        b.max_age = Duration::ZERO;
        let (mut o, _) = Outbox::open(&d, b).unwrap();
        assert!(!o.stale(), "an empty spool is never stale");
        o.push("result", "1", "s1", &[], "b").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(o.stale());
        assert_eq!(o.depth(), 1);
        assert!(o.has_room(10));
    }

    #[test]
    fn corrupt_entry_is_kept_aside_and_reported() {
        let d = tmp("corrupt");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("00000000000000000007.json"), b"{not json").unwrap();
        let (o, p) = Outbox::open(&d, bounds(2)).unwrap();
        assert_eq!(o.depth(), 0);
        assert_eq!(p.len(), 1);
        assert!(d.join("00000000000000000007.json.corrupt").exists());
    }
}
