//! The command table: what `COMMAND` reports, and what the connection checks before a
//! command runs (does it exist? does it have the right number of arguments?).
//!
//! Arity follows Redis: a positive number is the exact argument count *including the
//! command name* (`GET key` is 2); a negative one is a minimum (`SET` is -3).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;
use proto::Frame;

/// One command's metadata, as `COMMAND INFO` and `COMMAND DOCS` describe it.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// Lowercase name.
    pub name: &'static str,
    pub arity: i64,
    /// Redis flags: `write`, `readonly`, `fast`, `admin`, `pubsub`, `blocking`, ...
    pub flags: &'static [&'static str],
    /// Position of the first key argument (0: no keys), the last (-1: the last argument)
    /// and the step between keys (`MSET k v k v` has step 2). Proxies use these.
    pub first_key: i64,
    pub last_key: i64,
    pub step: i64,
    /// Redis's group name: `string`, `generic`, `connection`, `server`, `list`, ...
    pub group: &'static str,
    /// One line for `COMMAND DOCS` and redis-cli's `HELP`.
    pub summary: &'static str,
    /// Argument synopsis shown by redis-cli's hints (`key value [EX seconds]`).
    pub syntax: &'static str,
    /// A container command's subcommands (`CLIENT SETNAME`, `CONFIG GET`) and the arity
    /// of each, counted like `arity` (`CONFIG GET pattern` is 3). Empty for the others.
    pub subcommands: &'static [(&'static str, i64)],
}

impl CommandSpec {
    /// A spec with no keys; set the key positions with struct update syntax when needed.
    pub const fn new(
        name: &'static str,
        arity: i64,
        flags: &'static [&'static str],
        group: &'static str,
        summary: &'static str,
    ) -> Self {
        CommandSpec {
            name,
            arity,
            flags,
            first_key: 0,
            last_key: 0,
            step: 0,
            group,
            summary,
            syntax: "",
            subcommands: &[],
        }
    }

    /// The same spec as a container of `subcommands` (lowercase names, with arities).
    pub const fn subcommands(mut self, subcommands: &'static [(&'static str, i64)]) -> Self {
        self.subcommands = subcommands;
        self
    }

    /// The same spec with key positions (first, last, step).
    pub const fn keys(mut self, first: i64, last: i64, step: i64) -> Self {
        self.first_key = first;
        self.last_key = last;
        self.step = step;
        self
    }

    /// The same spec with an argument synopsis.
    pub const fn syntax(mut self, syntax: &'static str) -> Self {
        self.syntax = syntax;
        self
    }

    /// Does a request of `argc` words (name included) have an acceptable count?
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// For a container command, is `args` (after the name) one of its subcommands with
    /// the right number of arguments? Redis checks this before it runs, or queues, a
    /// command, with these words; so a transaction refuses `CONFIG GET` without a
    /// pattern when it is queued, not when `EXEC` runs it.
    pub fn check_subcommand(&self, args: &proto::Args) -> Result<(), proto::CommandError> {
        // Most commands have no subcommands: answer that before reading an argument.
        if self.subcommands.is_empty() {
            return Ok(());
        }
        let Some(sub) = args.peek_all().next() else {
            return Ok(());
        };
        let found = self
            .subcommands
            .iter()
            .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(sub));
        let Some(&(name, arity)) = found else {
            return Err(proto::CommandError::err(format!(
                "unknown subcommand '{}'. Try {} HELP.",
                String::from_utf8_lossy(&sub[..sub.len().min(128)]),
                self.name.to_ascii_uppercase()
            )));
        };
        let argc = args.remaining() as i64 + 1;
        if (arity >= 0 && argc != arity) || (arity < 0 && argc < -arity) {
            return Err(proto::CommandError::WrongArity(format!(
                "{}|{name}",
                self.name
            )));
        }
        Ok(())
    }

    /// `COMMAND INFO` entry: name, arity, flags, first key, last key, step, ACL
    /// categories, tips, key specs, subcommands.
    pub fn info_frame(&self) -> Frame {
        Frame::Array(vec![
            Frame::bulk(self.name),
            Frame::Integer(self.arity),
            Frame::Set(self.flags.iter().map(|f| Frame::simple(f)).collect()),
            Frame::Integer(self.first_key),
            Frame::Integer(self.last_key),
            Frame::Integer(self.step),
            Frame::Set(vec![Frame::Simple(Bytes::from(format!("@{}", self.group)))]),
            Frame::Set(vec![]),
            Frame::Array(vec![]),
            Frame::Array(vec![]),
        ])
    }

    /// `COMMAND DOCS` entry (the value; the key is the name).
    pub fn docs_frame(&self) -> Frame {
        let mut doc = vec![
            (Frame::bulk("summary"), Frame::bulk(self.summary)),
            (Frame::bulk("since"), Frame::bulk("1.0.0")),
            (Frame::bulk("group"), Frame::bulk(self.group)),
        ];
        if !self.syntax.is_empty() {
            doc.push((
                Frame::bulk("arguments"),
                Frame::Array(
                    self.syntax
                        .split_whitespace()
                        .map(|word| {
                            Frame::Map(vec![
                                (Frame::bulk("name"), Frame::bulk(word.to_ascii_lowercase())),
                                (Frame::bulk("type"), Frame::bulk("string")),
                                (Frame::bulk("display_text"), Frame::bulk(word.to_string())),
                            ])
                        })
                        .collect(),
                ),
            ));
        }
        Frame::Map(doc)
    }
}

/// FNV-1a, the hash of the command table. Every request looks its command up, and the
/// standard library's SipHash spends ~250 instructions on a three-letter name because it
/// resists collision attacks. This table is built once from names in the source and never
/// takes an insert from a client, so there is nothing to attack: a one-multiply-per-byte
/// hash is enough.
#[derive(Debug, Clone, Copy)]
pub struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// One round for a length (a `[u8]` key's hash starts with its length), not one per
    /// byte of a `usize`.
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x0100_0000_01b3);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Name → spec lookup over the service's built-ins and a server's own commands.
#[derive(Debug)]
pub struct CommandTable {
    /// Keyed by the name's bytes, so a request's name is looked up as it arrived
    /// (lowercased) with no UTF-8 check (see [`proto::Args::name_bytes`]).
    by_name: HashMap<&'static [u8], &'static CommandSpec, BuildHasherDefault<NameHasher>>,
    ordered: Vec<&'static CommandSpec>,
}

impl CommandTable {
    /// Server commands win over built-ins of the same name (kv's `SELECT`).
    pub fn new(builtin: &'static [CommandSpec], server: &'static [CommandSpec]) -> Self {
        let mut by_name = HashMap::default();
        let mut ordered = Vec::new();
        for spec in server.iter().chain(builtin) {
            if let std::collections::hash_map::Entry::Vacant(slot) =
                by_name.entry(spec.name.as_bytes())
            {
                slot.insert(spec);
                ordered.push(spec);
            }
        }
        CommandTable { by_name, ordered }
    }

    pub fn get(&self, lowercase_name: &str) -> Option<&'static CommandSpec> {
        self.get_bytes(lowercase_name.as_bytes())
    }

    /// [`Self::get`] by the name's bytes.
    pub fn get_bytes(&self, lowercase_name: &[u8]) -> Option<&'static CommandSpec> {
        self.by_name.get(lowercase_name).copied()
    }

    pub fn all(&self) -> &[&'static CommandSpec] {
        &self.ordered
    }
}
