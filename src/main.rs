//! The `alnrisk` binary: a thin wrapper over the command-line module.

mod bench_e2e;
mod cli;
mod demo;

fn main() -> std::process::ExitCode {
    cli::run()
}
