//! Simulated console export: copy one examination into a watched folder the way consoles write files.
//!
//! - `atomic`: each file is written under a temporary dot-name (`.NAME.part`), synced, then renamed into place;
//! - `slow-write`: each file appears under its final name and grows in four chunks, `pace/4` apart;
//! - `partial`: like atomic, except that one DICOM file first appears truncated to half its length and is only
//!   completed after all the others have been written.
//!
//! Files are copied in sorted order with `pace` between them, keeping their paths relative to the examination.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Export style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayStyle {
    /// Temporary name, then rename.
    Atomic,
    /// Visible while being written.
    SlowWrite,
    /// One file truncated, completed last.
    Partial,
}

fn write_all(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

fn atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.part"));
    write_all(&tmp, bytes)?;
    std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))
}

/// Copy the examination `from` into `to`. Returns the files written (final paths).
pub fn replay(from: &Path, to: &Path, pace: Duration, style: ReplayStyle) -> Result<Vec<PathBuf>> {
    let files = crate::ingest::list_files(from)?;
    let mut written = Vec::new();
    let mut deferred: Option<(PathBuf, Vec<u8>)> = None;
    for (n, src) in files.iter().enumerate() {
        let rel = src.strip_prefix(from).unwrap_or(src);
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let bytes = std::fs::read(src).map_err(|e| Error::io(src, e))?;
        match style {
            ReplayStyle::Atomic => atomic(&dest, &bytes)?,
            ReplayStyle::SlowWrite => {
                let mut f = std::fs::File::create(&dest).map_err(|e| Error::io(&dest, e))?;
                for chunk in bytes.chunks(bytes.len().div_ceil(4).max(1)) {
                    f.write_all(chunk).map_err(|e| Error::io(&dest, e))?;
                    f.flush().map_err(|e| Error::io(&dest, e))?;
                    std::thread::sleep(pace / 4);
                }
                f.sync_all().map_err(|e| Error::io(&dest, e))?;
            }
            ReplayStyle::Partial => {
                if n == files.len() / 2 && deferred.is_none() {
                    write_all(&dest, &bytes[..bytes.len() / 2])?;
                    deferred = Some((dest.clone(), bytes));
                } else {
                    atomic(&dest, &bytes)?;
                }
            }
        }
        written.push(dest);
        std::thread::sleep(pace);
    }
    if let Some((dest, bytes)) = deferred {
        write_all(&dest, &bytes)?;
    }
    Ok(written)
}
