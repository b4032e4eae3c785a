//! Lays out the infralab binary's hot code together: the functions a pipelined request
//! runs through (the connection loop, the request parser, kv's command path, tokio's
//! wake-up, the allocator's fast path), listed in `hot-code.order`, hottest first, are
//! placed side by side at the start of the text instead of wherever the linker happens
//! to put them among 20 MB of code.
//!
//! Why: kv runs fewer instructions per request than Redis but took more user time, and
//! callgrind's cache simulation showed where — instruction-cache misses, spread about one
//! per request over a dozen hot functions whose code happened to share cache sets, and the
//! count moved with every change that moved the layout (11 to 27 misses per `SETBIT` from
//! an unrelated change). The list is made by `scripts/hot-code-order.sh` from callgrind
//! profiles; a function missing from it (renamed, or a new one) is simply laid out as
//! before, so the list ages gracefully and wants renewing only when the hot path changes.
//!
//! Only lld reads a symbol ordering file. Rust links x86_64 Linux with its bundled lld
//! (since 1.90), so the flag is passed there, and nowhere else;
//! `INFRALAB_NO_CODE_ORDER=1` turns it off (to measure without it, or for another linker).

fn main() {
    println!("cargo:rerun-if-changed=hot-code.order");
    println!("cargo:rerun-if-env-changed=INFRALAB_NO_CODE_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let lld_by_default = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if !lld_by_default || var("INFRALAB_NO_CODE_ORDER") == "1" {
        return;
    }
    let order = format!("{}/hot-code.order", var("CARGO_MANIFEST_DIR"));
    // lld fails on a missing file: a source tree copied without it links as before.
    if !std::path::Path::new(&order).exists() {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={order}");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
