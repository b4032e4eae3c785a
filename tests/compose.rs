//! The docker-compose topology, brought up for real: 3 kv shards each with an async
//! replica, the router, the cache over the router, broker, stream, pubsub and the bridge.
//!
//! It runs README.md's offline containers block as written, command by command: it builds
//! the `infralab:local` image FROM scratch with `docker/build-offline.sh` (which finds
//! this build's own binary through `CARGO_TARGET_DIR`; no registry is needed), starts the
//! topology, runs the blog demo inside it, and — before the block's last command tears
//! everything down with its volumes — stops one kv primary and shows reads for that shard
//! still served through the router from its replica while writes to it fail fast.
//!
//! On a machine without the docker CLI the test says so and passes; where the CLI exists
//! but the engine does not answer `docker info`, it fails.
#![allow(clippy::unwrap_used)] // test code: a panic is a test failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use proto::Frame;
use service::RespClient;

/// The compose project: not the default one, so a topology the user runs is left alone.
const PROJECT: &str = "infralab-compose-test";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// README.md's offline containers block: its commands, comments dropped.
fn readme_block() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let from = readme
        .find("The whole path, start to end:")
        .expect("README.md has the offline containers block");
    let block = &readme[from..];
    let open = block.find("```sh\n").unwrap() + "```sh\n".len();
    let close = open + block[open..].find("```").unwrap();
    block[open..close]
        .lines()
        .map(|line| line.split(" #").next().unwrap().trim().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

/// Runs the README's commands one by one in `bash`, carrying `export`/`unset` between
/// them as a shell would, in this test's own compose project and cargo target directory.
struct Shell {
    env: BTreeMap<String, String>,
}

impl Shell {
    fn new() -> Shell {
        // CARGO_BIN_EXE_infralab is TARGET_DIR/PROFILE/infralab.
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_infralab"));
        let target_dir = binary.parent().unwrap().parent().unwrap();
        let env = [
            ("COMPOSE_PROJECT_NAME", PROJECT),
            ("CARGO_TARGET_DIR", target_dir.to_str().unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Shell { env }
    }

    fn run(&mut self, line: &str) -> Output {
        if let Some(assignment) = line.strip_prefix("export ") {
            let (name, value) = assignment.split_once('=').unwrap();
            self.env.insert(name.to_string(), value.to_string());
            return run(&mut Command::new("true"));
        }
        if let Some(name) = line.strip_prefix("unset ") {
            self.env.remove(name.trim());
            return run(&mut Command::new("true"));
        }
        run(Command::new("bash").args(["-c", line]).envs(&self.env))
    }

    /// A command outside the README's block, with the same environment.
    fn compose(&self) -> Command {
        let mut c = Command::new("docker-compose");
        c.envs(&self.env)
            .env("COMPOSE_FILE", "docker-compose.yml:docker/offline.yml");
        c
    }
}

/// Tears the topology down (containers, network, volumes) however the test ends.
struct Topology(Command);

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = self
            .0
            .args([
                "--profile",
                "demo",
                "down",
                "-v",
                "--remove-orphans",
                "-t",
                "2",
            ])
            .current_dir(root())
            .output();
    }
}

/// Polls `f` until it returns `Some`, or panics after `limit` saying what never happened.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn call(addr: &str, words: &[&str]) -> Option<Frame> {
    let mut c = RespClient::connect(addr).await.ok()?;
    c.call(words.iter().map(|w| w.to_string())).await.ok()
}

fn field<'a>(map: &'a Frame, name: &str) -> Option<&'a Frame> {
    match map {
        Frame::Array(items) => items
            .chunks(2)
            .find(|kv| kv[0].as_bytes().is_some_and(|k| k == name.as_bytes()))
            .map(|kv| &kv[1]),
        Frame::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| k.as_bytes().is_some_and(|k| k == name.as_bytes()))
            .map(|(_, v)| v),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_topology_serves_the_blog_and_survives_a_primary_loss() {
    match Command::new("docker").arg("info").output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("no docker CLI on this machine: the compose topology is not tested here");
            return;
        }
        Err(e) => panic!("docker info: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "the docker CLI is installed but the engine does not answer `docker info`: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    let block = readme_block();
    let step = |needle: &str| {
        block
            .iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("README's offline block has no `{needle}`: {block:#?}"))
    };
    let (build_at, up_at) = (step("docker/build-offline.sh"), step(" up -d"));
    let (demo_at, down_at) = (step(" run --rm demo"), step(" down -v"));
    assert!(
        build_at < up_at && up_at < demo_at && demo_at < down_at,
        "{block:#?}"
    );

    let mut shell = Shell::new();
    let _topology = Topology(shell.compose());
    // The block up to the demo; the build with this test's profile (debug: quicker).
    let binary = Path::new(env!("CARGO_BIN_EXE_infralab"));
    for (i, line) in block[..demo_at].iter().enumerate() {
        if i != build_at {
            shell.run(line);
            continue;
        }
        let profile = binary.parent().unwrap().file_name().unwrap();
        let line = match profile.to_str() {
            Some("debug") => format!("{line} --debug"),
            _ => line.clone(),
        };
        let built = shell.run(&line);
        let said = String::from_utf8_lossy(&built.stdout);
        assert!(
            said.contains(&format!("built infralab:local from {}", binary.display())),
            "build-offline.sh did not find this build's binary through CARGO_TARGET_DIR: {said}"
        );
    }

    let router = "127.0.0.1:7390";
    eventually("the router to answer", Duration::from_secs(60), || async {
        (call(router, &["PING"]).await? == Frame::simple("PONG")).then_some(())
    })
    .await;

    // The blog demo, run inside the compose network against the service names.
    let demo = shell.run(&block[demo_at]);
    let trace = String::from_utf8_lossy(&demo.stdout).into_owned();
    assert!(
        trace.contains("router") && trace.contains("cache"),
        "demo trace:\n{trace}"
    );

    // Find a key on shard s0 and one elsewhere; write both through the router.
    let mut on_s0 = None;
    let mut elsewhere = None;
    for i in 0..100 {
        let key = format!("compose:{i}");
        let Some(info) = call(router, &["ROUTER", "SHARDOF", &key]).await else {
            continue;
        };
        let shard = field(&info, "shard").and_then(Frame::as_bytes).cloned();
        match shard.as_deref() {
            Some(b"s0") if on_s0.is_none() => on_s0 = Some(key),
            Some(b"s0") => {}
            Some(_) if elsewhere.is_none() => elsewhere = Some(key),
            _ => {}
        }
    }
    let (on_s0, elsewhere) = (on_s0.unwrap(), elsewhere.unwrap());
    for key in [&on_s0, &elsewhere] {
        assert_eq!(
            call(router, &["SET", key, "before"]).await,
            Some(Frame::ok())
        );
    }

    // Lose shard s0's primary.
    run(shell.compose().args(["stop", "-t", "1", "kv-0"]));

    // Reads of s0 keep working from its replica once the router has ejected the primary;
    // writes to s0 fail fast with an error; the other shards are unaffected.
    eventually(
        "a read of s0 served by its replica",
        Duration::from_secs(30),
        || async { (call(router, &["GET", &on_s0]).await? == Frame::bulk("before")).then_some(()) },
    )
    .await;
    let write = call(router, &["SET", &on_s0, "after"]).await.unwrap();
    assert!(
        write.is_error(),
        "a write to a shard without its primary must fail: {write:?}"
    );
    assert_eq!(
        call(router, &["SET", &elsewhere, "after"]).await,
        Some(Frame::ok())
    );
    assert_eq!(
        call(router, &["GET", &elsewhere]).await,
        Some(Frame::bulk("after"))
    );

    // The rest of the block: down -v removes the containers and the volumes.
    for line in &block[demo_at + 1..] {
        shell.run(line);
    }
    let left = run(Command::new("docker").args([
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={PROJECT}"),
    ]));
    assert!(left.stdout.is_empty(), "containers left after down -v");
    let volumes = run(Command::new("docker").args([
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={PROJECT}"),
    ]));
    assert!(volumes.stdout.is_empty(), "volumes left after down -v");
}
