//! The sql server alone, as `infralab sql` runs it (same runtime, same `run`), for
//! profiling without building every other server: `cargo build --release -p sql --example
//! sqld`, then `BIN=$CARGO_TARGET_DIR/release/examples/sqld bench/sql.sh` (the first
//! argument, `sql`, is the subcommand name the bench passes and is skipped).

use clap::Parser;

fn main() {
    let args: Vec<String> = std::env::args()
        .enumerate()
        .filter(|(i, a)| !(*i == 1 && a == "sql"))
        .map(|(_, a)| a)
        .collect();
    let args = sql::Args::parse_from(args);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sqld: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    // The signal handler is a task: spawned inside the runtime.
    let result =
        runtime.block_on(async { sql::run(args, service::telemetry::shutdown_on_signal()).await });
    if let Err(e) = result {
        eprintln!("sqld: {e}");
        std::process::exit(1);
    }
}
