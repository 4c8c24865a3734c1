//! `alnrisk quarantine list` / `show REF`: what the daemon set aside, with the real file names, for someone
//! logged in to the box. Events name a quarantined file only by its reference (`file 3f9a0c1b2d4e`) and a series
//! by `series 0123456789abcdef`; this is where an operator turns a reference back into the export's names. Nothing
//! here leaves the box.

use std::path::PathBuf;
use std::process::ExitCode;

use alnrisk::daemon::config::DaemonConfig;
use alnrisk::daemon::quarantine::{self, QuarantineEntry};

/// `alnrisk quarantine …`.
#[derive(clap::Args)]
pub(super) struct QuarantineArgs {
    /// The daemon's configuration (its `state.dir` holds the quarantine).
    #[arg(long, global = true, default_value = "/etc/alnrisk/alnrisk.toml")]
    config: PathBuf,
    #[command(subcommand)]
    what: QuarantineCommand,
}

#[derive(clap::Subcommand)]
enum QuarantineCommand {
    /// Every quarantined input, oldest first: day, reference, reason, time and the real names.
    List,
    /// One entry in full, by its reference as an event gave it (`file 3f9a0c1b2d4e`, `series 0123…`, or 6+ of its
    /// hex digits): the names, the error, and where the files are now.
    Show {
        /// The reference.
        reference: String,
    },
}

pub(super) fn run(args: QuarantineArgs) -> anyhow::Result<ExitCode> {
    let cfg = DaemonConfig::load(&args.config)?;
    let dir = quarantine::folder(&cfg);
    let (entries, unreadable) = quarantine::entries(&dir);
    for note in &unreadable {
        eprintln!("an unreadable quarantine note (skipped): {}", note.display());
    }
    match args.what {
        QuarantineCommand::List => {
            if entries.is_empty() {
                println!("{}: nothing quarantined", dir.display());
            }
            for e in &entries {
                println!(
                    "{}  {:<23}  {:<22}  {} file(s)  {}",
                    e.day,
                    e.reference,
                    e.note.reason,
                    e.note.files.len(),
                    e.note.at
                );
                for f in &e.note.files {
                    println!("    {f}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Show { reference } => {
            let found: Vec<&QuarantineEntry> = entries.iter().filter(|e| e.matches(&reference)).collect();
            if found.is_empty() {
                eprintln!("no quarantined input is named {reference:?} in {}", dir.display());
                return Ok(ExitCode::FAILURE);
            }
            for e in found {
                println!("{} ({}, {})", e.reference, e.day, e.note.at);
                println!("reason: {}", e.note.reason);
                println!("error:  {}", e.note.detail);
                println!("files in the export folder, as they were named there:");
                for (name, r) in e.note.files.iter().zip(&e.note.file_refs) {
                    println!("  {r}  {name}");
                }
                println!("kept now at:");
                for f in &e.stored {
                    println!("  {}", f.display());
                }
                println!("note: {}", e.note_path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
