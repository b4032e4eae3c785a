//! Flags every server takes, and the subset that `CONFIG SET` may change at runtime.

use std::sync::RwLock;
use std::time::Duration;

use clap::Args as ClapArgs;
use proto::Limits;

use crate::protected::ProtectedMode;

/// Redis's default `tcp-backlog`: how many connections the kernel queues before `accept`.
pub const DEFAULT_TCP_BACKLOG: u32 = 511;

/// `--bind`, `--port`, `--maxclients`, `--requirepass`, `--protected-mode`, `--timeout`,
/// `--tcp-backlog`, `--proto-max-bulk-len`. Each server's own `Args` struct flattens this one.
#[derive(Debug, Clone, ClapArgs)]
pub struct ServiceArgs {
    /// Address to listen on. The default is loopback only: expose a server on purpose.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// TCP port (0 picks a free one). Each server has its own default.
    #[arg(long)]
    pub port: Option<u16>,
    /// Connections beyond this many get `-ERR max number of clients reached`.
    #[arg(long, default_value_t = 10_000)]
    pub maxclients: usize,
    /// Require `AUTH <password>` before any other command.
    #[arg(long, env = "INFRALAB_REQUIREPASS")]
    pub requirepass: Option<String>,
    #[command(flatten)]
    pub protected_mode: ProtectedMode,
    /// Close connections idle for this many seconds (0: never, as Redis's default).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// Connections the kernel queues for the server before it accepts them (Redis's
    /// `tcp-backlog`; capped by the kernel's `net.core.somaxconn`). A burst of connects
    /// beyond it is dropped and retried by the clients a second later.
    #[arg(long, default_value_t = DEFAULT_TCP_BACKLOG)]
    pub tcp_backlog: u32,
    /// Largest bulk string a client may send, in bytes.
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    pub proto_max_bulk_len: usize,
}

impl ServiceArgs {
    /// Settings for tests: loopback, port 0, defaults for everything else.
    pub fn ephemeral() -> Self {
        ServiceArgs {
            bind: "127.0.0.1".into(),
            port: Some(0),
            maxclients: 10_000,
            requirepass: None,
            protected_mode: ProtectedMode::ON,
            timeout: 0,
            tcp_backlog: DEFAULT_TCP_BACKLOG,
            proto_max_bulk_len: 512 * 1024 * 1024,
        }
    }
}

/// `yes` or `no`, as Redis writes a boolean setting (a clap value parser for every
/// server's yes/no flags, `--protected-mode` first, and for their `CONFIG SET`).
pub fn yes_no(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".to_string()),
    }
}

/// The live values behind `CONFIG GET`/`CONFIG SET` for the service's own parameters.
#[derive(Debug)]
pub struct Settings {
    pub bind: String,
    pub port: u16,
    pub tcp_backlog: u32,
    inner: RwLock<Mutable>,
}

#[derive(Debug, Clone)]
struct Mutable {
    maxclients: usize,
    requirepass: Option<String>,
    protected_mode: bool,
    timeout: u64,
    limits: Limits,
}

impl Settings {
    pub fn new(args: &ServiceArgs, port: u16) -> Self {
        let limits = Limits {
            max_bulk_len: args.proto_max_bulk_len,
            ..Limits::default()
        };
        Settings {
            bind: args.bind.clone(),
            port,
            tcp_backlog: args.tcp_backlog,
            inner: RwLock::new(Mutable {
                maxclients: args.maxclients,
                requirepass: args.requirepass.clone().filter(|p| !p.is_empty()),
                protected_mode: args.protected_mode.on,
                timeout: args.timeout,
                limits,
            }),
        }
    }

    fn read(&self) -> Mutable {
        self.read_with(Mutable::clone)
    }

    /// Reads one field without cloning the rest: the connection asks for the limits and
    /// the idle timeout before every batch of commands, and a whole clone (the password
    /// `String` included) was ~60 instructions each of a `GET`.
    fn read_with<R>(&self, f: impl FnOnce(&Mutable) -> R) -> R {
        match self.inner.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write(&self, f: impl FnOnce(&mut Mutable)) {
        match self.inner.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    pub fn maxclients(&self) -> usize {
        self.read_with(|m| m.maxclients)
    }

    pub fn requirepass(&self) -> Option<String> {
        self.read_with(|m| m.requirepass.clone())
    }

    /// Whether protected mode is on (see [`crate::protected`]).
    pub fn protected_mode(&self) -> bool {
        self.read_with(|m| m.protected_mode)
    }

    /// Whether a password is set, without cloning it.
    pub fn has_password(&self) -> bool {
        self.read_with(|m| m.requirepass.is_some())
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        let t = self.read_with(|m| m.timeout);
        (t > 0).then(|| Duration::from_secs(t))
    }

    pub fn limits(&self) -> Limits {
        self.read_with(|m| m.limits)
    }

    /// The service's parameters as `CONFIG GET` shows them.
    pub fn config_get(&self) -> Vec<(String, String)> {
        let m = self.read();
        vec![
            ("bind".into(), self.bind.clone()),
            ("port".into(), self.port.to_string()),
            ("maxclients".into(), m.maxclients.to_string()),
            ("requirepass".into(), m.requirepass.unwrap_or_default()),
            ("protected-mode".into(), yes_or_no(m.protected_mode).into()),
            ("timeout".into(), m.timeout.to_string()),
            ("tcp-backlog".into(), self.tcp_backlog.to_string()),
            (
                "proto-max-bulk-len".into(),
                m.limits.max_bulk_len.to_string(),
            ),
        ]
    }

    /// `CONFIG SET` for the service's parameters. `None`: not one of them.
    pub fn config_set(&self, name: &str, value: &str) -> Option<Result<(), String>> {
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())
        };
        let result = match name {
            "maxclients" => number().map(|n| self.write(|m| m.maxclients = n as usize)),
            "timeout" => number().map(|n| self.write(|m| m.timeout = n)),
            "proto-max-bulk-len" => number().and_then(|n| {
                if n < 1024 * 1024 {
                    Err("argument must be at least 1mb".to_string())
                } else {
                    self.write(|m| m.limits.max_bulk_len = n as usize);
                    Ok(())
                }
            }),
            "requirepass" => {
                let pass = (!value.is_empty()).then(|| value.to_string());
                self.write(|m| m.requirepass = pass);
                Ok(())
            }
            "protected-mode" => yes_no(value).map(|on| self.write(|m| m.protected_mode = on)),
            "bind" | "port" | "tcp-backlog" => Err("can't set immutable config".to_string()),
            _ => return None,
        };
        Some(result)
    }
}

fn yes_or_no(on: bool) -> &'static str {
    if on { "yes" } else { "no" }
}

/// Parses a memory size as Redis's config does: `1000`, `64kb`, `100mb`, `2gb` (`k`, `m`,
/// `g` are powers of 1000; `kb`, `mb`, `gb` powers of 1024; case-insensitive). For flags
/// such as `--maxmemory` and `--client-output-buffer-limit`, and their `CONFIG SET`.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &lower[digits.len()..] {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(format!("invalid memory size '{text}'")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("invalid memory size '{text}'"))
}

#[cfg(test)]
mod tests {
    use super::{ServiceArgs, parse_memory};
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    fn parse(args: &[&str]) -> Result<ServiceArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
            .map(|cli| cli.service)
    }

    #[test]
    fn protected_mode_and_backlog_flags() {
        let defaults = parse(&[]).map(|a| (a.protected_mode.on, a.tcp_backlog));
        assert_eq!(defaults.ok(), Some((true, 511)));
        let set = parse(&["--protected-mode", "no", "--tcp-backlog", "4096"]);
        assert_eq!(
            set.map(|a| (a.protected_mode.on, a.tcp_backlog)).ok(),
            Some((false, 4096))
        );
        assert_eq!(
            parse(&["--protected-mode", "YES"])
                .map(|a| a.protected_mode.on)
                .ok(),
            Some(true)
        );
        assert!(parse(&["--protected-mode", "maybe"]).is_err());
    }

    #[test]
    fn memory_sizes_as_redis_writes_them() {
        assert_eq!(parse_memory("1000"), Ok(1000));
        assert_eq!(parse_memory("1k"), Ok(1000));
        assert_eq!(parse_memory("64KB"), Ok(64 * 1024));
        assert_eq!(parse_memory("32mb"), Ok(32 << 20));
        assert_eq!(parse_memory("2gb"), Ok(2 << 30));
        assert!(parse_memory("-1").is_err());
        assert!(parse_memory("12x").is_err());
        assert!(parse_memory("mb").is_err());
        assert!(parse_memory("99999999999gb").is_err());
    }
}
