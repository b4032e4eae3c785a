//! Prints the strategies' table: load spread over 10 shards, and the fraction of 1M keys
//! that move when an 11th shard is added. `cargo run -p shard-router --release --example
//! distribution` (bench/router.sh runs it).

use shard_router::strategy::ketama::Ketama;
use shard_router::strategy::{
    ShardInfo, Strategy, StrategyKind, loads, moved_fraction, relative_stddev,
};

fn refs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

fn main() -> Result<(), String> {
    const KEYS: u64 = 1_000_000;
    let names = |n: usize| (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>();
    let (ten, eleven) = (names(10), names(11));
    let build = |kind, names: &[String]| {
        let shards: Vec<ShardInfo> = names
            .iter()
            .map(|name| ShardInfo {
                name,
                weight: 1,
                until: None,
            })
            .collect();
        Strategy::new(kind, &shards, Ketama::DEFAULT_VNODES, None)
    };
    println!("{KEYS} keys; 10 shards, then an 11th is added");
    println!(
        "{:<12} {:>22} {:>18} {:>10}",
        "strategy", "load stddev / mean", "moved 10 -> 11", "ideal"
    );
    for kind in [
        StrategyKind::Modulo,
        StrategyKind::Ketama,
        StrategyKind::Jump,
        StrategyKind::Rendezvous,
    ] {
        let before = build(kind, &ten)?;
        let after = build(kind, &eleven)?;
        let spread = relative_stddev(&loads(&before, 10, KEYS));
        let moved = moved_fraction((&before, &refs(&ten)), (&after, &refs(&eleven)), KEYS);
        println!(
            "{:<12} {:>21.2}% {:>17.2}% {:>9.2}%",
            format!("{kind:?}").to_lowercase(),
            spread * 100.0,
            moved * 100.0,
            100.0 / 11.0
        );
    }
    Ok(())
}
