//! The `alnrisk` binary: a thin wrapper over the command-line module.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
