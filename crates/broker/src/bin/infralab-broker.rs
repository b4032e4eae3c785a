//! The broker alone, as its own executable: what the crash test kills with SIGKILL.
//! `infralab broker` runs exactly the same code.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service::telemetry::init_logging(None);
    let args = broker::Args::parse();
    match broker::run(args, service::telemetry::shutdown_on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("broker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
