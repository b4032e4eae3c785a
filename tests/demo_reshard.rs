#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo reshard --against local`: adding a fourth shard moves about 3/4 of the keys
//! under modulo and about 1/4 under ketama, and every key is readable afterwards.

use infralab::demo::reshard::{self, KEYS};
use infralab::demo::{Against, Trace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modulo_moves_most_keys_and_ketama_about_a_quarter() {
    let mut trace = Trace::new();
    let out = reshard::run(Against::Local, &mut trace).await.unwrap();
    let modulo = out.strategy("modulo").unwrap();
    let ketama = out.strategy("ketama").unwrap();
    // Ideal: modulo 3/4 (a key stays only if h mod 3 == h mod 4), ketama 1/4.
    assert!(
        (0.65..=0.85).contains(&modulo.fraction),
        "modulo moved {:.3}",
        modulo.fraction
    );
    assert!(
        (0.12..=0.38).contains(&ketama.fraction),
        "ketama moved {:.3}",
        ketama.fraction
    );
    for m in [modulo, ketama] {
        assert_eq!(
            m.readable, KEYS,
            "{}: every key found on its new shard",
            m.strategy
        );
        assert_eq!(
            m.after.iter().sum::<i64>(),
            KEYS as i64,
            "{}: no key duplicated or lost",
            m.strategy
        );
        assert!(m.after[3] > 0, "{}: the new shard got keys", m.strategy);
    }
}
