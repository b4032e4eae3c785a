//! `infralab-stream`: the stream server alone, for crash tests and quick experiments
//! (`infralab stream` in the main binary is the same server).
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = stream::Args::parse();
    service::telemetry::init_logging(None);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("infralab-stream: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = service::telemetry::shutdown_on_signal();
        stream::run(args, shutdown).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infralab-stream: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
