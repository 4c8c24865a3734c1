//! Durable file operations shared by the spool, the ledger and the quarantine: a write is on disk (file and
//! directory entry fsynced) before the caller goes on, so a power cut leaves either the old state or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// fsync a directory, so that a rename or a new entry in it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Write `bytes` to `path` atomically and durably: temporary dot-file, fsync, rename, fsync of the folder.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(dir)
}

/// Append one line to `path` and fsync it.
pub fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_data())
        .map_err(|e| Error::io(path, e))
}

/// Move `file` into `dir` under a name that does not exist yet (`name`, `name.1`, …); across file systems by
/// copy, fsync and delete. Returns the new path.
pub fn move_into(file: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "unnamed".into());
    let mut dest = dir.join(&name);
    let mut k = 1;
    while dest.exists() {
        dest = dir.join(format!("{name}.{k}"));
        k += 1;
    }
    if std::fs::rename(file, &dest).is_err() {
        std::fs::copy(file, &dest).map_err(|e| Error::io(&dest, e))?;
        std::fs::File::open(&dest)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&dest, e))?;
        std::fs::remove_file(file).map_err(|e| Error::io(file, e))?;
    }
    sync_dir(dir)?;
    Ok(dest)
}
