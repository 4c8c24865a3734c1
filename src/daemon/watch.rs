//! Watching the console's export folder: which files are ready to read.
//!
//! A file is ready once its size and mtime have not changed for `stable` (two looks at least), or at once when
//! it was renamed into place (consoles that write `x.part` then rename). Temporary names (`*.tmp`, `*.part`,
//! `*~`, dot-files and dot-folders) are never read. The folder is walked on start-up (files already there are
//! picked up) and then on every tick; inotify events (through `notify`) only make the next walk come sooner, so
//! the same walk is the polling fallback for SMB/NFS shares where inotify sees nothing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What inotify saw change under the export folder.
#[derive(Debug)]
pub enum FolderChange {
    /// A file renamed into place: ready at once.
    RenamedInto(PathBuf),
    /// Anything else: walk the folder soon.
    Other,
}

/// Call `on` for every inotify event under `dir` (recursively) while the returned watcher lives; a rename into
/// place is reported as such, and is followed by an `Other` too. `None` when inotify cannot watch `dir` (then the
/// periodic walk alone finds the files, as on SMB/NFS); an error only when no watcher can be made at all.
pub fn wake_on_changes(
    dir: &Path,
    on: impl Fn(FolderChange) + Send + 'static,
) -> crate::error::Result<Option<notify::RecommendedWatcher>> {
    use notify::Watcher;
    use notify::event::{EventKind, ModifyKind, RenameMode};
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if let EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) = ev.kind
                && let Some(p) = ev.paths.last()
            {
                on(FolderChange::RenamedInto(p.clone()));
            }
            on(FolderChange::Other);
        }
    })?;
    match w.watch(dir, notify::RecursiveMode::Recursive) {
        Ok(()) => Ok(Some(w)),
        Err(e) => {
            tracing::warn!("inotify unavailable ({e}); polling only");
            Ok(None)
        }
    }
}

/// Whether a name is temporary (never read).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") || name.ends_with('~')
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Look {
    size: u64,
    mtime: SystemTime,
}

#[derive(Debug)]
struct Seen {
    look: Look,
    since: Instant,
    looks: u32,
}

/// A file that became ready, with the modification time it was judged stable at.
#[derive(Debug, Clone, PartialEq)]
pub struct StableFile {
    /// The file.
    pub path: PathBuf,
    /// Its mtime at the walk that found it ready (`None` where the file system keeps none).
    pub modified: Option<SystemTime>,
}

/// The stability tracker of one export folder.
#[derive(Debug)]
pub struct ExportWatcher {
    root: PathBuf,
    stable: Duration,
    seen: HashMap<PathBuf, Seen>,
    emitted: HashMap<PathBuf, Look>,
    renamed: HashSet<PathBuf>,
}

impl ExportWatcher {
    /// Track `root` with stability time `stable`.
    pub fn new(root: &Path, stable: Duration) -> ExportWatcher {
        ExportWatcher {
            root: root.to_path_buf(),
            stable,
            seen: HashMap::new(),
            emitted: HashMap::new(),
            renamed: HashSet::new(),
        }
    }

    /// A file was renamed into place (an inotify `moved_to`): ready without waiting.
    pub fn mark_renamed(&mut self, path: &Path) {
        self.renamed.insert(path.to_path_buf());
    }

    /// Walk the folder; return the files that became ready since the last walk (sorted by path).
    pub fn scan(&mut self, now: Instant) -> Vec<StableFile> {
        let mut present = HashSet::new();
        let mut ready = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if is_temporary(&name) {
                    continue;
                }
                let path = e.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                if !meta.is_file() {
                    continue;
                }
                let modified = meta.modified().ok();
                let look = Look {
                    size: meta.len(),
                    mtime: modified.unwrap_or(SystemTime::UNIX_EPOCH),
                };
                present.insert(path.clone());
                if self.emitted.get(&path) == Some(&look) {
                    continue;
                }
                let renamed = self.renamed.contains(&path);
                let s = self.seen.entry(path.clone()).or_insert(Seen {
                    look,
                    since: now,
                    looks: 0,
                });
                if s.look != look {
                    *s = Seen {
                        look,
                        since: now,
                        looks: 0,
                    };
                }
                s.looks += 1;
                let old_enough = SystemTime::now()
                    .duration_since(look.mtime)
                    .is_ok_and(|age| age >= self.stable);
                let stable = s.looks >= 2 && (now.duration_since(s.since) >= self.stable || old_enough);
                if (renamed && look.size > 0) || stable {
                    self.seen.remove(&path);
                    self.renamed.remove(&path);
                    self.emitted.insert(path.clone(), look);
                    ready.push(StableFile { path, modified });
                }
            }
        }
        self.seen.retain(|p, _| present.contains(p));
        self.emitted.retain(|p, _| present.contains(p));
        self.renamed.retain(|p| present.contains(p));
        ready.sort_by(|a, b| a.path.cmp(&b.path));
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(ready: Vec<StableFile>) -> Vec<PathBuf> {
        ready.into_iter().map(|f| f.path).collect()
    }

    #[test]
    fn a_file_is_ready_only_once_stable_and_temporary_names_never() {
        let d = std::env::temp_dir().join(format!("alnrisk-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/a.dcm"), b"abc").unwrap();
        std::fs::write(d.join("b.part"), b"abc").unwrap();
        std::fs::write(d.join(".hidden"), b"abc").unwrap();
        let mut w = ExportWatcher::new(&d, Duration::from_millis(300));
        let t0 = Instant::now();
        assert!(paths(w.scan(t0)).is_empty(), "one look is not enough");
        assert!(
            paths(w.scan(t0 + Duration::from_millis(100))).is_empty(),
            "not stable long enough"
        );
        // grows: the clock restarts
        std::fs::write(d.join("sub/a.dcm"), b"abcdef").unwrap();
        assert!(paths(w.scan(t0 + Duration::from_millis(350))).is_empty());
        assert!(paths(w.scan(t0 + Duration::from_millis(500))).is_empty());
        assert_eq!(
            paths(w.scan(t0 + Duration::from_millis(700))),
            vec![d.join("sub/a.dcm")]
        );
        assert!(
            paths(w.scan(t0 + Duration::from_millis(1700))).is_empty(),
            "reported once"
        );
        // renamed into place: at once
        std::fs::rename(d.join("b.part"), d.join("b.dcm")).unwrap();
        w.mark_renamed(&d.join("b.dcm"));
        assert_eq!(paths(w.scan(t0 + Duration::from_millis(1800))), vec![d.join("b.dcm")]);
        // rewritten after being reported (a partial write completed): reported again once stable
        std::fs::write(d.join("b.dcm"), b"abcdefgh").unwrap();
        assert!(paths(w.scan(t0 + Duration::from_millis(1900))).is_empty());
        assert_eq!(paths(w.scan(t0 + Duration::from_millis(2300))), vec![d.join("b.dcm")]);
    }
}
