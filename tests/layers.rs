//! The layers of a server crate read one way: server (wiring) -> commands -> shared state
//! and engine. A command module that imports the server module would make the two depend
//! on each other; the shared state commands call into has a module of its own.
#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

use std::path::Path;

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_command_or_state_module_imports_the_server_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (krate, below_server) in [
        (
            "broker",
            &["commands", "shared_engine.rs", "consumer.rs"][..],
        ),
        ("cache", &["commands", "layer.rs", "invalidation.rs"][..]),
    ] {
        let src = root.join("crates").join(krate).join("src");
        let mut files = Vec::new();
        for part in below_server {
            let path = src.join(part);
            if path.is_dir() {
                sources(&path, &mut files);
            } else {
                files.push(path);
            }
        }
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                !text.contains("crate::server"),
                "{} imports the server module",
                file.display()
            );
        }
    }
}
