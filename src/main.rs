//! `infralab`: one binary, one subcommand per server, plus `up` to run them all.
//!
//! Each server crate owns its `Args` and its `start`/`run`; this file only composes them.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use service::{BoxError, Running};

mod startup;

/// mimalloc instead of glibc's malloc, as Redis links jemalloc: kv's checkpoint fold writes
/// sled, which copies a page on every insert and frees the old copy later, and glibc's heap
/// fragments under that pattern (a third of the folder's CPU was `malloc`/`free`; with
/// mimalloc the fold costs half as much, and the event loops run no more instructions).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "infralab",
    version,
    about = "Small, real infrastructure servers that teach system design"
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start every server in one process on its default port (plus --port-offset).
    Up(UpArgs),
    /// Check that a server answers PING (exit status 0) or not (1): for healthchecks.
    Ping(PingArgs),
    // Each server: one variant holding the crate's own `Args` (a clap Parser).
    // servers: variants
    /// Replay one of the course's scenarios with a narrated trace (`--against local|compose`).
    Demo(infralab::demo::DemoArgs),
    /// A bounded cache: LRU/W-TinyLFU/random/ttl eviction, TTLs, read-/write-through (port 7380).
    Cache(cache::Args),
    /// A Redis-protocol sharding proxy: six strategies, replicas, failover (port 7390).
    Router(shard_router::Args),
    /// Move the keys whose shard changes between two router configs (`--from`, `--to`).
    Reshard(shard_router::reshard::ReshardArgs),
    /// A Kafka-style partitioned log: topics, partitions, consumer groups, retention (port 7383).
    Stream(stream::Args),
    /// The durable key-value store with TTL, Redis-compatible (port 7379).
    Kv(kv::Args),
    /// Push pub/sub, Redis-compatible, with bounded subscriber queues (port 7381).
    Pubsub(pubsub::Args),
    /// Feed a pub/sub pattern into a broker queue: the hybrid pub/sub + queue.
    Bridge(pubsub::bridge::BridgeArgs),
    /// The work-queue broker: visibility timeouts, acks, redelivery, dead letters (port 7382).
    Broker(broker::Args),
    /// An HTTP caching reverse proxy (RFC 9111): one CDN edge node (port 8080).
    Edge(edge::Args),
    /// An HTTP load balancer: round robin, least connections, hashing, sticky (port 8090).
    Lb(edge::lb::Args),
    /// A small blog origin that sets every caching header (port 8000).
    Web(edge::web::Args),
    /// A relational database with ACID transactions, over the PostgreSQL protocol (port 7432).
    Sql(sql::Args),
    /// A live web page over every server's stats, polled over their own protocols (port 7300).
    Dashboard(dashboard::Args),
}

#[derive(clap::Args)]
struct UpArgs {
    /// Directory for the durable servers' data (one subdirectory each).
    #[arg(long, default_value = "./data")]
    dir: String,
    /// Address every server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Added to every default port (kv 7379+N, ..., Kafka 9092+N), to run beside the
    /// compose topology or another `up`.
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
}

#[derive(clap::Args)]
struct PingArgs {
    /// host:port of the server.
    #[arg(default_value = "127.0.0.1:7379")]
    addr: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Password, if the server has --requirepass.
    #[arg(long, env = "INFRALAB_REQUIREPASS")]
    password: Option<String>,
    /// An HTTP server (edge, lb, web): GET this path instead of PING; 2xx is healthy.
    #[arg(long)]
    http: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A demo's trace is the output: its in-process servers log only warnings unless asked.
    let log_level = match (&cli.command, cli.log_level.as_deref()) {
        (Command::Demo(_), None) => Some("warn"),
        (_, level) => level,
    };
    service::telemetry::init_logging(log_level);
    let runtime = match runtime_for(&cli.command) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("infralab: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up(args).await,
            Command::Ping(args) => ping(args).await,
            // servers: run
            Command::Demo(args) => infralab::demo::run(args).await,
            Command::Cache(args) => {
                serve_until_signal(cache::start(args, service::telemetry::shutdown_on_signal()))
                    .await
            }
            Command::Router(args) => {
                serve_until_signal(shard_router::start(
                    args,
                    service::telemetry::shutdown_on_signal(),
                ))
                .await
            }
            Command::Reshard(args) => shard_router::reshard::run(args).await.map(|_| ()),
            Command::Stream(args) => {
                serve_until_signal(stream::start(
                    args,
                    service::telemetry::shutdown_on_signal(),
                ))
                .await
            }
            Command::Kv(args) => {
                serve_until_signal(kv::start(args, service::telemetry::shutdown_on_signal())).await
            }
            Command::Pubsub(args) => {
                serve_until_signal(pubsub::start(
                    args,
                    service::telemetry::shutdown_on_signal(),
                ))
                .await
            }
            Command::Bridge(args) => {
                pubsub::bridge::run(args, service::telemetry::shutdown_on_signal()).await
            }
            Command::Sql(args) => sql::run(args, service::telemetry::shutdown_on_signal()).await,
            Command::Dashboard(args) => {
                let dashboard =
                    dashboard::start(args, service::telemetry::shutdown_on_signal()).await?;
                println!("dashboard: {}", dashboard.url());
                dashboard.running.wait().await;
                Ok(())
            }
            Command::Broker(args) => {
                serve_until_signal(broker::start(
                    args,
                    service::telemetry::shutdown_on_signal(),
                ))
                .await
            }
            Command::Edge(args) => {
                serve_until_signal(edge::start(args, service::telemetry::shutdown_on_signal()))
                    .await
            }
            Command::Lb(args) => {
                serve_until_signal(edge::lb::start(
                    args,
                    service::telemetry::shutdown_on_signal(),
                ))
                .await
            }
            Command::Web(args) => {
                serve_until_signal(edge::web::start(
                    args,
                    service::telemetry::shutdown_on_signal(),
                ))
                .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infralab: {}", startup::explain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The runtime `main` runs a command on. A server that runs its own event loop on a
/// thread of its own (`service::spawn_on_own_thread`: kv, cache, router, stream, pubsub)
/// leaves the main thread nothing to do but wait for a signal, so it gets a
/// single-threaded runtime: a pool of idle worker threads would only cost their stacks
/// and their allocator heaps in the server's resident memory (what a stalled
/// subscriber's row in `bench/pubsub.sh` compares with Redis). Everything else (`up`,
/// the demos, the HTTP servers) gets the multi-threaded one.
fn runtime_for(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    match command {
        Command::Kv(_)
        | Command::Pubsub(_)
        | Command::Cache(_)
        | Command::Router(_)
        | Command::Stream(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    }
}

/// Runs one server until SIGINT/SIGTERM.
async fn serve_until_signal(
    start: impl Future<Output = Result<Running, BoxError>>,
) -> Result<(), BoxError> {
    let running = start.await?;
    running.wait().await;
    Ok(())
}

/// Starts every server on its default port (moved by `--port-offset`, on `--bind`), in
/// dependency order (kv first: the router and the cache use it), and prints where each
/// runs. Durable servers keep their data under `--dir`. Every port is checked before
/// anything is created, so a busy port leaves nothing behind.
async fn up(args: UpArgs) -> Result<(), BoxError> {
    let dir = args.dir.trim_end_matches('/');
    let data = |name: &str| format!("{dir}/{name}");
    let bind = args.bind.as_str();
    // Every listener `up` opens, moved by --port-offset and checked before anything starts.
    let [
        kv_port,
        router_port,
        cache_port,
        broker_port,
        beanstalk_port,
        sqs_port,
        stream_port,
        kafka_port,
        pubsub_port,
        web_port,
        lb_port,
        edge_port,
        sql_port,
        dashboard_port,
    ] = startup::free_ports(
        bind,
        args.port_offset,
        [
            // servers: ports
            ("kv", kv::DEFAULT_PORT),
            ("shard-router", shard_router::DEFAULT_PORT),
            ("cache", cache::DEFAULT_PORT),
            ("broker", broker::DEFAULT_PORT),
            (
                "broker (beanstalkd protocol)",
                broker::beanstalk::DEFAULT_BEANSTALK_PORT,
            ),
            ("broker (SQS API)", broker::sqs::DEFAULT_SQS_PORT),
            ("stream", stream::DEFAULT_PORT),
            ("stream (Kafka protocol)", stream::kafka::DEFAULT_KAFKA_PORT),
            ("pubsub", pubsub::DEFAULT_PORT),
            ("web", edge::web::DEFAULT_PORT),
            ("lb", edge::lb::DEFAULT_PORT),
            ("edge", edge::proxy::DEFAULT_PORT),
            ("sql", sql::DEFAULT_PORT),
            ("dashboard", dashboard::DEFAULT_PORT),
        ],
    )
    .await?;
    // How a client reaches them: `-h` only when not on the default loopback address.
    let host = match client_host(bind) {
        "127.0.0.1" => String::new(),
        other => format!("-h {other} "),
    };
    let listen = |port: u16| {
        [
            "--bind".to_string(),
            bind.to_string(),
            "--port".into(),
            port.to_string(),
        ]
    };

    let shutdown = service::telemetry::shutdown_on_signal();
    // (name, address, how to try it), and the servers to wait for.
    let mut table: Vec<(&str, String, String)> = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    // servers: up
    let kv = kv::start(
        kv::Args::parse_from(
            ["kv".to_string(), "--dir".into(), data("kv")]
                .into_iter()
                .chain(listen(kv_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    let kv_addr = kv.addr().to_string();
    table.push((
        "kv",
        kv_addr.clone(),
        format!("redis-cli {host}-p {kv_port} SET greeting hello"),
    ));
    running.push(kv);
    let router = shard_router::start(
        shard_router::Args::parse_from(
            ["router".to_string(), "--shards".into(), kv_addr.clone()]
                .into_iter()
                .chain(listen(router_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "shard-router",
        router.addr().to_string(),
        format!("redis-cli {host}-p {router_port} ROUTER SHARDOF user:1"),
    ));
    running.push(router);
    let cache = cache::start(
        cache::Args::parse_from(
            ["cache".to_string(), "--origin".into(), kv_addr]
                .into_iter()
                .chain(listen(cache_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "cache",
        cache.addr().to_string(),
        format!("redis-cli {host}-p {cache_port} GET greeting"),
    ));
    running.push(cache);
    let broker = broker::start_with_protocols(
        broker::Args::parse_from(
            [
                "broker".to_string(),
                "--dir".into(),
                data("broker"),
                "--beanstalk-port".into(),
                beanstalk_port.to_string(),
                "--sqs-port".into(),
                sqs_port.to_string(),
            ]
            .into_iter()
            .chain(listen(broker_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "broker",
        broker.running.addr().to_string(),
        format!("redis-cli {host}-p {broker_port} QSEND jobs hello"),
    ));
    table.push((
        "broker (beanstalkd)",
        broker
            .beanstalk_addr
            .map_or_else(|| "off".into(), |a| a.to_string()),
        format!(
            "printf 'stats\\r\\n' | nc {} {beanstalk_port}",
            client_host(bind)
        ),
    ));
    table.push((
        "broker (SQS)",
        broker
            .sqs_addr
            .map_or_else(|| "off".into(), |a| a.to_string()),
        format!(
            "aws sqs list-queues --endpoint-url http://{}:{sqs_port}",
            client_host(bind)
        ),
    ));
    running.push(broker.running);
    let stream = stream::start_with_kafka(
        stream::Args::parse_from(
            [
                "stream".to_string(),
                "--dir".into(),
                data("stream"),
                "--kafka-port".into(),
                kafka_port.to_string(),
            ]
            .into_iter()
            .chain(listen(stream_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "stream",
        stream.running.addr().to_string(),
        format!("redis-cli {host}-p {stream_port} PRODUCE orders hello KEY user-1"),
    ));
    if let Some(kafka) = stream.kafka_addr {
        table.push((
            "stream (Kafka)",
            kafka.to_string(),
            format!("kcat -b {}:{kafka_port} -L", client_host(bind)),
        ));
    }
    running.push(stream.running);
    let pubsub = pubsub::start(
        pubsub::Args::parse_from(
            ["pubsub".to_string()]
                .into_iter()
                .chain(listen(pubsub_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "pubsub",
        pubsub.addr().to_string(),
        format!("redis-cli {host}-p {pubsub_port} SUBSCRIBE news"),
    ));
    running.push(pubsub);
    // The HTTP levels: web (origin) <- lb <- edge, the path the `levels` demo walks.
    let near = client_host(bind);
    let web = edge::web::start(
        edge::web::Args::parse_from(
            [
                "web".to_string(),
                "--purge-edge".into(),
                format!("{near}:{edge_port}"),
                "--kv".into(),
                format!("{near}:{router_port}"),
                "--cache".into(),
                format!("{near}:{cache_port}"),
            ]
            .into_iter()
            .chain(listen(web_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "web",
        web.addr().to_string(),
        format!("curl -i {near}:{web_port}/posts/1"),
    ));
    let lb = edge::lb::start(
        edge::lb::Args::parse_from(
            [
                "lb".to_string(),
                "--backends".into(),
                format!("{near}:{web_port}"),
            ]
            .into_iter()
            .chain(listen(lb_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "lb",
        lb.addr().to_string(),
        format!("curl -i {near}:{lb_port}/posts/1"),
    ));
    let edge = edge::start(
        edge::Args::parse_from(
            [
                "edge".to_string(),
                "--origin".into(),
                format!("{near}:{lb_port}"),
            ]
            .into_iter()
            .chain(listen(edge_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "edge",
        edge.addr().to_string(),
        format!("curl -i {near}:{edge_port}/posts/1"),
    ));
    running.extend([edge, lb, web]);

    let sql_server = sql::start(
        sql::Args::parse_from(
            ["sql".to_string(), "--dir".into(), data("sql")]
                .into_iter()
                .chain(listen(sql_port)),
        ),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "sql",
        sql_server.addr().to_string(),
        format!("psql -h {} -p {sql_port} -c 'SELECT 1'", client_host(bind)),
    ));
    running.push(sql_server);

    // The dashboard last: it polls every server above, at the addresses just printed.
    let at = |port: u16| format!("{near}:{port}");
    let dashboard = dashboard::start(
        dashboard::Args::parse_from([
            "dashboard".to_string(),
            "--bind".into(),
            bind.to_string(),
            "--port".into(),
            dashboard_port.to_string(),
            "--kv".into(),
            at(kv_port),
            "--cache".into(),
            at(cache_port),
            "--router".into(),
            at(router_port),
            "--broker".into(),
            at(broker_port),
            "--stream".into(),
            at(stream_port),
            "--pubsub".into(),
            at(pubsub_port),
            "--sql".into(),
            at(sql_port),
            "--edge".into(),
            at(edge_port),
        ]),
        shutdown.clone(),
    )
    .await?;
    table.push((
        "dashboard",
        dashboard.running.addr().to_string(),
        format!("open {}", dashboard.url()),
    ));
    running.push(dashboard.running);

    println!("{:<16} {:<18} try it", "server", "address");
    for (name, addr, hint) in &table {
        println!("{name:<16} {addr:<18} {hint}");
    }
    shutdown.cancelled().await;
    for server in running {
        server.wait().await;
    }
    Ok(())
}

/// The host a client on this machine dials for a server bound to `bind`.
fn client_host(bind: &str) -> &str {
    match bind {
        "0.0.0.0" | "::" => "127.0.0.1",
        other => other,
    }
}

/// `PING` with a deadline, for container healthchecks: exit 0 only on `+PONG`.
async fn ping(args: PingArgs) -> Result<(), BoxError> {
    if let Some(path) = &args.http {
        return http_ping(&args, path).await;
    }
    let attempt = async {
        let mut client = service::RespClient::connect(&args.addr).await?;
        if let Some(password) = &args.password {
            client
                .call(["AUTH", password.as_str()].map(str::to_owned))
                .await?;
        }
        client.call(["PING"]).await
    };
    let reply = tokio::time::timeout(Duration::from_millis(args.timeout_ms), attempt)
        .await
        .map_err(|_| format!("{}: no reply within {} ms", args.addr, args.timeout_ms))??;
    match reply {
        proto::Frame::Simple(pong) if pong == "PONG" => {
            println!("PONG");
            Ok(())
        }
        other => Err(format!("{}: unexpected reply {other:?}", args.addr).into()),
    }
}

/// `ping --http PATH`: GET the path of an HTTP server; exit 0 only on a 2xx.
async fn http_ping(args: &PingArgs, path: &str) -> Result<(), BoxError> {
    let upstream =
        edge::http::Upstream::new(&args.addr, Duration::from_millis(args.timeout_ms), 1 << 20);
    let headers = Default::default();
    let response = upstream
        .send(Default::default(), path, headers, Default::default())
        .await
        .map_err(|e| format!("{}{path}: {e}", args.addr))?;
    if response.status().is_success() {
        println!("{}", response.status());
        Ok(())
    } else {
        Err(format!("{}{path}: {}", args.addr, response.status()).into())
    }
}
