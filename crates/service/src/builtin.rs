//! Connection-level commands, answered the same way by every server.

use bytes::Bytes;
use proto::glob::glob_match;
use proto::{Args, CommandError, Frame, Protocol};

use crate::client::{Client, Stats};
use crate::command_table::CommandSpec;
use crate::connection::{Context, unknown_command};
use crate::info::{InfoSection, render};
use crate::server::{Reply, Server};

/// The built-in commands' table entries.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "ping",
        -1,
        &["fast", "stale"],
        "connection",
        "Returns the server's liveliness response.",
    )
    .syntax("[message]"),
    CommandSpec::new(
        "echo",
        2,
        &["fast"],
        "connection",
        "Returns the given string.",
    )
    .syntax("message"),
    CommandSpec::new(
        "quit",
        -1,
        &["fast", "no-auth"],
        "connection",
        "Closes the connection.",
    ),
    CommandSpec::new(
        "reset",
        1,
        &["fast", "no-auth"],
        "connection",
        "Resets the connection.",
    ),
    CommandSpec::new(
        "hello",
        -1,
        &["fast", "no-auth"],
        "connection",
        "Handshakes with the server: protocol version, authentication, name.",
    )
    .syntax("[protover [AUTH username password] [SETNAME clientname]]"),
    CommandSpec::new(
        "auth",
        -2,
        &["fast", "no-auth"],
        "connection",
        "Authenticates the connection.",
    )
    .syntax("[username] password"),
    CommandSpec::new(
        "client",
        -2,
        &["admin"],
        "connection",
        "A container for client connection commands.",
    )
    .syntax("ID|INFO|LIST|GETNAME|SETNAME|SETINFO|KILL|NO-EVICT|NO-TOUCH|TRACKING|CACHING|GETREDIR|TRACKINGINFO|HELP")
    .subcommands(&[
        ("id", 2),
        ("info", 2),
        ("list", -2),
        ("getname", 2),
        ("setname", 3),
        ("setinfo", 4),
        ("kill", -3),
        ("no-evict", 3),
        ("no-touch", 3),
        // Client-side caching: answered by the servers that track (kv, cache; see `hub`),
        // an unknown subcommand on the others.
        ("tracking", -3),
        ("caching", 3),
        ("getredir", 2),
        ("trackinginfo", 2),
        ("help", 2),
    ]),
    CommandSpec::new(
        "command",
        -1,
        &["loading", "stale"],
        "server",
        "Returns detailed information about all commands.",
    )
    .syntax("[COUNT|DOCS|INFO|LIST|GETKEYS] [arg ...]")
    .subcommands(&[
        ("count", 2),
        ("docs", -2),
        ("info", -2),
        ("list", -2),
        ("getkeys", -3),
        ("help", 2),
    ]),
    CommandSpec::new(
        "config",
        -2,
        &["admin"],
        "server",
        "A container for server configuration commands.",
    )
    .syntax("GET|SET|RESETSTAT|REWRITE parameter [value]")
    .subcommands(&[
        ("get", -3),
        ("set", -4),
        ("resetstat", 2),
        ("rewrite", 2),
        ("help", 2),
    ]),
    CommandSpec::new(
        "info",
        -1,
        &["loading", "stale"],
        "server",
        "Returns information and statistics about the server.",
    )
    .syntax("[section ...]"),
    CommandSpec::new(
        "select",
        2,
        &["fast", "loading"],
        "connection",
        "Changes the selected database.",
    )
    .syntax("index"),
];

/// Executes a built-in command (or reports the command unknown).
pub(crate) fn execute<S: Server>(
    ctx: &Context<S>,
    client: &mut Client<S::Session>,
    mut args: Args,
) -> Reply {
    let result = match args.name() {
        "ping" => ping(&mut args),
        "echo" => args.next_bytes().map(Frame::Bulk),
        "quit" => return Reply::Close(Frame::ok()),
        "reset" => reset(ctx, client),
        "hello" => hello(ctx, client, &mut args),
        "auth" => auth(ctx, client, &mut args),
        "client" => client_command(ctx, client, &mut args),
        "command" => command(ctx, &mut args),
        "config" => config(ctx, &mut args),
        "info" => Ok(info(ctx, &mut args)),
        "select" => match args.next_int() {
            Ok(0) => Ok(Frame::ok()),
            Ok(_) => Err(CommandError::err("DB index is out of range")),
            Err(e) => Err(e),
        },
        _ => Err(unknown_command(&args)),
    };
    match result {
        Ok(frame) => Reply::One(frame),
        Err(e) => Reply::One(e.to_frame()),
    }
}

fn ping(args: &mut Args) -> Result<Frame, CommandError> {
    match args.remaining() {
        0 => Ok(Frame::simple("PONG")),
        1 => args.next_bytes().map(Frame::Bulk),
        _ => Err(args.wrong_arity()),
    }
}

fn reset<S: Server>(
    ctx: &Context<S>,
    client: &mut Client<S::Session>,
) -> Result<Frame, CommandError> {
    client.session = S::Session::default();
    client.protocol = Protocol::Resp2;
    client.authenticated = ctx.shared.settings.requirepass().is_none();
    let mut meta = client.info.meta();
    meta.name = None;
    meta.db = 0;
    meta.resp = 2;
    meta.flags = "N";
    Ok(Frame::simple("RESET"))
}

/// Compares secrets in time independent of where they differ, so response timing does
/// not reveal how many leading characters of a guessed password were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_password<S: Server>(
    ctx: &Context<S>,
    user: Option<&[u8]>,
    pass: &[u8],
) -> Result<(), CommandError> {
    let wrongpass = || {
        CommandError::coded(
            "WRONGPASS",
            "invalid username-password pair or user is disabled.",
        )
    };
    if user.is_some_and(|u| u != b"default") {
        return Err(wrongpass());
    }
    match ctx.shared.settings.requirepass() {
        None if user.is_none() => Err(CommandError::err(
            "AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        )),
        None => Ok(()),
        Some(expected) if constant_time_eq(expected.as_bytes(), pass) => Ok(()),
        Some(_) => Err(wrongpass()),
    }
}

fn auth<S: Server>(
    ctx: &Context<S>,
    client: &mut Client<S::Session>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let (user, pass) = match args.remaining() {
        1 => (None, args.next_bytes()?),
        2 => (Some(args.next_bytes()?), args.next_bytes()?),
        _ => return Err(CommandError::Syntax),
    };
    check_password(ctx, user.as_deref(), &pass)?;
    client.authenticated = true;
    Ok(Frame::ok())
}

fn hello<S: Server>(
    ctx: &Context<S>,
    client: &mut Client<S::Session>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let mut protocol = client.protocol;
    if !args.is_empty() {
        let version = args
            .next_int()
            .map_err(|_| CommandError::err("Protocol version is not an integer or out of range"))?;
        protocol = match version {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => {
                return Err(CommandError::coded(
                    "NOPROTO",
                    "unsupported protocol version",
                ));
            }
        };
    }
    let mut name = None;
    while let Some(option) = args.next_keyword() {
        match option.as_str() {
            "AUTH" => {
                let user = args.next_bytes().map_err(|_| CommandError::Syntax)?;
                let pass = args.next_bytes().map_err(|_| CommandError::Syntax)?;
                check_password(ctx, Some(&user), &pass)?;
                client.authenticated = true;
            }
            "SETNAME" => {
                name = Some(valid_name(
                    args.next_bytes().map_err(|_| CommandError::Syntax)?,
                )?)
            }
            _ => {
                return Err(CommandError::err(format!(
                    "Syntax error in HELLO option '{option}'"
                )));
            }
        }
    }
    if !client.authenticated {
        return Err(CommandError::coded(
            "NOAUTH",
            "HELLO must be called with the client already authenticated, otherwise the HELLO \
             <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        ));
    }
    if client.protocol != protocol {
        client.protocol = protocol;
        ctx.server.protocol_changed(&mut client.session, protocol);
    }
    {
        let mut meta = client.info.meta();
        meta.resp = protocol.version();
        if let Some(name) = name {
            meta.name = (!name.is_empty()).then_some(name);
        }
    }
    Ok(Frame::Map(vec![
        (Frame::bulk("server"), Frame::bulk(S::HELLO_SERVER)),
        (Frame::bulk("version"), Frame::bulk(S::REDIS_VERSION)),
        (Frame::bulk("proto"), Frame::Integer(protocol.version())),
        (Frame::bulk("id"), Frame::Integer(client.id() as i64)),
        (Frame::bulk("mode"), Frame::bulk("standalone")),
        (Frame::bulk("role"), Frame::bulk("master")),
        (Frame::bulk("modules"), Frame::Array(vec![])),
        (
            Frame::bulk("infralab_server"),
            Frame::bulk(ctx.server.name()),
        ),
        (Frame::bulk("infralab_version"), Frame::bulk(crate::VERSION)),
    ]))
}

/// Client names are one word of printable ASCII, as Redis requires.
fn valid_name(name: Bytes) -> Result<Bytes, CommandError> {
    if name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        Ok(name)
    } else {
        Err(CommandError::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}

fn unknown_subcommand(args: &Args, sub: &str) -> CommandError {
    CommandError::err(format!(
        "unknown subcommand '{sub}'. Try {} HELP.",
        args.name().to_ascii_uppercase()
    ))
}

fn help(lines: &[&str]) -> Frame {
    Frame::Array(
        lines
            .iter()
            .map(|l| Frame::Simple(Bytes::copy_from_slice(l.as_bytes())))
            .collect(),
    )
}

fn client_command<S: Server>(
    ctx: &Context<S>,
    client: &mut Client<S::Session>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    let sub = args.next_keyword().unwrap_or_default();
    match sub.as_str() {
        "ID" => {
            args.finish()?;
            Ok(Frame::Integer(client.id() as i64))
        }
        "GETNAME" => {
            args.finish()?;
            Ok(client
                .info
                .meta()
                .name
                .clone()
                .map(Frame::Bulk)
                .unwrap_or(Frame::Null))
        }
        "SETNAME" => {
            let name = valid_name(args.next_bytes()?)?;
            args.finish()?;
            client.info.meta().name = (!name.is_empty()).then_some(name);
            Ok(Frame::ok())
        }
        "SETINFO" => {
            let attr = args.next_keyword().ok_or_else(|| args.wrong_arity())?;
            let value = args.next_bytes()?;
            args.finish()?;
            let mut meta = client.info.meta();
            match attr.as_str() {
                "LIB-NAME" => meta.lib_name = Some(value),
                "LIB-VER" => meta.lib_ver = Some(value),
                _ => return Err(CommandError::err(format!("Unrecognized option '{attr}'"))),
            }
            Ok(Frame::ok())
        }
        "INFO" => {
            args.finish()?;
            Ok(Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(client.info.describe() + "\n"),
            })
        }
        "LIST" => {
            let mut ids: Option<Vec<u64>> = None;
            while let Some(option) = args.next_keyword() {
                match option.as_str() {
                    "TYPE" => {
                        args.next_bytes()?;
                    }
                    "ID" => {
                        let mut list = Vec::new();
                        while !args.is_empty() {
                            list.push(
                                u64::try_from(args.next_int()?)
                                    .map_err(|_| CommandError::NotInteger)?,
                            );
                        }
                        ids = Some(list);
                    }
                    _ => return Err(CommandError::Syntax),
                }
            }
            let text: String = ctx
                .shared
                .client_list()
                .iter()
                .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
                .map(|c| c.describe() + "\n")
                .collect();
            Ok(Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(text),
            })
        }
        "KILL" => client_kill(ctx, client, args),
        "NO-EVICT" | "NO-TOUCH" => {
            let mode = args.next_keyword().ok_or_else(|| args.wrong_arity())?;
            args.finish()?;
            if mode == "ON" || mode == "OFF" {
                Ok(Frame::ok())
            } else {
                Err(CommandError::Syntax)
            }
        }
        "HELP" => Ok(help(&[
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ID -- Return the ID of the current connection.",
            "INFO -- Return information about the current client connection.",
            "LIST [ID <id> ...] -- Return information about client connections.",
            "GETNAME -- Return the name of the current connection.",
            "SETNAME <name> -- Assign the name <name> to the current connection.",
            "SETINFO LIB-NAME|LIB-VER <value> -- Set client library information.",
            "KILL <ip:port> | KILL ID <id> | KILL ADDR <ip:port> [SKIPME yes|no] -- Kill connections.",
        ])),
        _ => Err(unknown_subcommand(args, &sub)),
    }
}

/// `CLIENT KILL ip:port` (old form, replies OK) or `CLIENT KILL ID id | ADDR ip:port
/// [SKIPME yes|no]` (new form, replies with the number killed).
fn client_kill<S: Server>(
    ctx: &Context<S>,
    client: &Client<S::Session>,
    args: &mut Args,
) -> Result<Frame, CommandError> {
    if args.remaining() == 1 {
        let addr = args.next_str()?;
        let target = ctx
            .shared
            .client_list()
            .into_iter()
            .find(|c| c.addr.to_string() == addr);
        return match target {
            Some(c) => {
                c.kill.cancel();
                Ok(Frame::ok())
            }
            None => Err(CommandError::err("No such client")),
        };
    }
    let (mut id, mut addr, mut skip_me) = (None, None, true);
    while let Some(filter) = args.next_keyword() {
        match filter.as_str() {
            "ID" => id = Some(args.next_int()?),
            "ADDR" => addr = Some(args.next_str()?),
            "SKIPME" => skip_me = args.next_keyword().ok_or(CommandError::Syntax)? == "YES",
            _ => return Err(CommandError::Syntax),
        }
    }
    let mut killed = 0;
    for c in ctx.shared.client_list() {
        let matches = id.is_none_or(|id| c.id as i64 == id)
            && addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
            && !(skip_me && c.id == client.id());
        if matches {
            c.kill.cancel();
            killed += 1;
        }
    }
    Ok(Frame::Integer(killed))
}

fn command<S: Server>(ctx: &Context<S>, args: &mut Args) -> Result<Frame, CommandError> {
    let Some(sub) = args.next_keyword() else {
        return Ok(Frame::Array(
            ctx.table.all().iter().map(|s| s.info_frame()).collect(),
        ));
    };
    let named = |args: &mut Args| -> Vec<String> {
        args.rest()
            .iter()
            .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
            .collect()
    };
    match sub.as_str() {
        "COUNT" => Ok(Frame::Integer(ctx.table.all().len() as i64)),
        "LIST" => Ok(Frame::bulk_array(ctx.table.all().iter().map(|s| s.name))),
        "INFO" => {
            let names = named(args);
            if names.is_empty() {
                return Ok(Frame::Array(
                    ctx.table.all().iter().map(|s| s.info_frame()).collect(),
                ));
            }
            Ok(Frame::Array(
                names
                    .iter()
                    .map(|n| {
                        ctx.table
                            .get(n)
                            .map(CommandSpec::info_frame)
                            .unwrap_or(Frame::NullArray)
                    })
                    .collect(),
            ))
        }
        "DOCS" => {
            let names = named(args);
            let specs: Vec<&CommandSpec> = if names.is_empty() {
                ctx.table.all().to_vec()
            } else {
                names.iter().filter_map(|n| ctx.table.get(n)).collect()
            };
            Ok(Frame::Map(
                specs
                    .iter()
                    .map(|s| (Frame::bulk(s.name), s.docs_frame()))
                    .collect(),
            ))
        }
        "GETKEYS" => {
            let words = args.rest();
            let name = words
                .first()
                .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase());
            let Some(spec) = name.as_deref().and_then(|n| ctx.table.get(n)) else {
                return Err(CommandError::err("Invalid command specified"));
            };
            if !spec.arity_ok(words.len()) {
                return Err(CommandError::err(
                    "Invalid number of arguments specified for command",
                ));
            }
            if spec.first_key == 0 {
                return Err(CommandError::err("The command has no key arguments"));
            }
            let last = if spec.last_key < 0 {
                words.len() as i64 + spec.last_key
            } else {
                spec.last_key
            };
            let keys = (spec.first_key..=last)
                .step_by(spec.step.max(1) as usize)
                .filter_map(|i| words.get(i as usize).cloned());
            Ok(Frame::bulk_array(keys))
        }
        "HELP" => Ok(help(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand) -- Return details about all commands.",
            "COUNT -- Return the total number of commands in this server.",
            "LIST -- Return a list of all commands in this server.",
            "INFO [<command-name> ...] -- Return details about the given commands.",
            "DOCS [<command-name> ...] -- Return documentation about the given commands.",
            "GETKEYS <full-command> -- Return the keys from a full command.",
        ])),
        _ => Err(unknown_subcommand(args, &sub)),
    }
}

/// The service's parameters and the server's, with `save`/`appendonly` defaulting to
/// "no persistence" for servers that have none (redis-benchmark asks for both).
fn all_params<S: Server>(ctx: &Context<S>) -> Vec<(String, String)> {
    let mut params = ctx.server.config_get();
    for (name, value) in ctx.shared.settings.config_get().into_iter().chain([
        ("save".to_string(), String::new()),
        ("appendonly".to_string(), "no".to_string()),
        ("databases".to_string(), "1".to_string()),
    ]) {
        if !params.iter().any(|(n, _)| *n == name) {
            params.push((name, value));
        }
    }
    params
}

fn config<S: Server>(ctx: &Context<S>, args: &mut Args) -> Result<Frame, CommandError> {
    let sub = args.next_keyword().unwrap_or_default();
    match sub.as_str() {
        "GET" => {
            let patterns: Vec<Bytes> = args.rest();
            if patterns.is_empty() {
                return Err(CommandError::WrongArity("config|get".into()));
            }
            let matched = all_params(ctx)
                .into_iter()
                .filter(|(name, _)| {
                    patterns
                        .iter()
                        .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
                })
                .map(|(name, value)| (Frame::bulk(name), Frame::bulk(value)))
                .collect();
            Ok(Frame::Map(matched))
        }
        "SET" => {
            let pairs = args.rest();
            if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
                return Err(CommandError::WrongArity("config|set".into()));
            }
            for pair in pairs.chunks(2) {
                let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                let value = String::from_utf8_lossy(&pair[1]).into_owned();
                let outcome = ctx
                    .server
                    .config_set(&name, &value)
                    .or_else(|| ctx.shared.settings.config_set(&name, &value));
                match outcome {
                    None => {
                        return Err(CommandError::err(format!(
                            "Unknown option or number of arguments for CONFIG SET - '{name}'"
                        )));
                    }
                    Some(Err(why)) => {
                        return Err(CommandError::err(format!(
                            "CONFIG SET failed (possibly related to argument '{name}') - {why}"
                        )));
                    }
                    Some(Ok(())) => {}
                }
            }
            Ok(Frame::ok())
        }
        "RESETSTAT" => {
            ctx.shared.reset_stats();
            ctx.server.reset_stats();
            Ok(Frame::ok())
        }
        "REWRITE" => Err(CommandError::err(
            "The server is running without a config file",
        )),
        "HELP" => Ok(help(&[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern> -- Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value> -- Set the configuration <directive> to <value>.",
            "RESETSTAT -- Reset statistics reported by the INFO command.",
        ])),
        _ => Err(unknown_subcommand(args, &sub)),
    }
}

fn info<S: Server>(ctx: &Context<S>, args: &mut Args) -> Frame {
    let wanted: Vec<String> = args
        .rest()
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let shared = &ctx.shared;
    let uptime = shared.started.elapsed().as_secs();
    let now_usec = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let mut sections = vec![
        InfoSection::new("server")
            .field("redis_version", S::REDIS_VERSION)
            .field("infralab_version", crate::VERSION)
            .field("infralab_server", ctx.server.name())
            .field("redis_mode", "standalone")
            .field(
                "os",
                format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            )
            .field("arch_bits", usize::BITS)
            .field("multiplexing_api", "tokio")
            .field("process_id", std::process::id())
            .field("run_id", &shared.run_id)
            .field("tcp_port", shared.settings.port)
            .field("server_time_usec", now_usec)
            .field("uptime_in_seconds", uptime)
            .field("uptime_in_days", uptime / 86_400)
            .field(
                "executable",
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
            .field("config_file", ""),
        InfoSection::new("clients")
            .field("connected_clients", shared.connected_clients())
            .field("maxclients", shared.settings.maxclients()),
        InfoSection::new("stats")
            .field(
                "total_connections_received",
                Stats::get(&shared.stats.connections_received),
            )
            .field(
                "total_commands_processed",
                shared.stat(|s| &s.commands_processed),
            )
            .field(
                "rejected_connections",
                Stats::get(&shared.stats.rejected_connections),
            )
            .field("total_net_input_bytes", shared.stat(|s| &s.net_input_bytes))
            .field(
                "total_net_output_bytes",
                shared.stat(|s| &s.net_output_bytes),
            )
            .field("total_reads_processed", shared.stat(|s| &s.reads_processed))
            .field(
                "total_writes_processed",
                shared.stat(|s| &s.writes_processed),
            ),
    ];
    sections.extend(ctx.server.info());
    Frame::Verbatim {
        format: *b"txt",
        text: Bytes::from(render(sections, &wanted)),
    }
}
