#![allow(clippy::unwrap_used)] // test code: a panic is a test failure
//! `infralab demo celebrity --against local`: the warmed post is all hits; the lazy one
//! misses once.

use infralab::demo::celebrity::{self, Reads};
use infralab::demo::{Against, Trace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmed_post_is_all_hits_and_lazy_post_misses_once() {
    let mut trace = Trace::new();
    let out = celebrity::run(Against::Local, &mut trace).await.unwrap();
    assert_eq!(out.warmed, 1);
    assert_eq!(
        out.celebrity,
        Reads {
            hits: 200,
            misses: 0,
            origin_fetches: 0
        }
    );
    assert_eq!(
        out.regular,
        Reads {
            hits: 199,
            misses: 1,
            origin_fetches: 1
        }
    );
    assert_eq!(out.correct_reads, 400);
}
