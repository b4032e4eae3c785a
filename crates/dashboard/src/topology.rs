//! What the dashboard watches: a list of servers, each a kind (which protocol and which
//! stats to ask for) and an address. This is the README's diagram as data; the page draws
//! it and the poller walks it.

use serde::Serialize;

/// The kinds of server infralab has, each polled over its own protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Kv,
    Cache,
    Router,
    Broker,
    Stream,
    Pubsub,
    Sql,
    Edge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Kv => "kv",
            Kind::Cache => "cache",
            Kind::Router => "router",
            Kind::Broker => "broker",
            Kind::Stream => "stream",
            Kind::Pubsub => "pubsub",
            Kind::Sql => "sql",
            Kind::Edge => "edge",
        }
    }
}

/// One server to watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// What the page calls it: the kind, numbered when there are several (`kv-0`, `kv-1`).
    pub name: String,
    pub kind: Kind,
    /// `host:port`.
    pub addr: String,
}

/// Every server the dashboard watches, in the order the page lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub targets: Vec<Target>,
}

impl Topology {
    /// Adds the servers of one kind from a comma-separated address list (`a:1,b:2`); an
    /// empty list adds none. Several of one kind are numbered from 0, as compose names kv
    /// shards.
    pub fn add(&mut self, kind: Kind, addrs: &str) {
        let addrs: Vec<&str> = addrs
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        for (i, addr) in addrs.iter().enumerate() {
            let name = if addrs.len() == 1 {
                kind.as_str().to_owned()
            } else {
                format!("{}-{i}", kind.as_str())
            };
            self.targets.push(Target {
                name,
                kind,
                addr: (*addr).to_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_servers_of_a_kind_are_numbered() {
        let mut t = Topology::default();
        t.add(Kind::Kv, "127.0.0.1:7379, 127.0.0.1:7479");
        t.add(Kind::Cache, "127.0.0.1:7380");
        t.add(Kind::Edge, "");
        let names: Vec<&str> = t.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["kv-0", "kv-1", "cache"]);
        assert_eq!(t.targets[1].addr, "127.0.0.1:7479");
    }
}
