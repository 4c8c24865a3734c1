//! The `alnrisk` binary: a thin wrapper over the command-line module.

mod cli;
mod demo;

fn main() -> std::process::ExitCode {
    cli::run()
}
