//! One poll of one server: whether it answered, and the numbers it gave.
//!
//! Every number is a `name -> f64`, flat, whatever the server: `hit_ratio`,
//! `end.orders.0` (topic `orders`, partition 0), `shard.s1.up`. A flat namespace keeps the
//! history ([`crate::history`]) and the page generic: a panel picks the names it draws by
//! prefix. Counters that only grow end in `_total`; the history turns each into a rate
//! (`commands_total` -> `commands_per_sec`), as Prometheus's `rate()` does.

use std::collections::BTreeMap;

use serde::Serialize;

/// What one poll of one server found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Did it answer?
    pub up: bool,
    /// Why not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    /// Words rather than numbers: a kv node's `role`, a shard's `status`.
    pub labels: BTreeMap<String, String>,
}

impl Sample {
    /// A server that did not answer.
    pub fn down(error: impl Into<String>) -> Self {
        Sample {
            up: false,
            error: Some(error.into()),
            ..Sample::default()
        }
    }

    /// A server that answered; numbers follow.
    pub fn up() -> Self {
        Sample {
            up: true,
            ..Sample::default()
        }
    }

    pub fn set(&mut self, name: impl Into<String>, value: f64) {
        self.metrics.insert(name.into(), value);
    }

    pub fn label(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.labels.insert(name.into(), value.into());
    }

    /// Copies the fields of `fields` that parse as numbers, renamed by `names`
    /// (`(field in INFO, metric name)`).
    pub fn take(&mut self, fields: &BTreeMap<String, String>, names: &[(&str, &str)]) {
        for (field, metric) in names {
            if let Some(value) = fields.get(*field).and_then(|v| v.parse::<f64>().ok()) {
                self.set(*metric, value);
            }
        }
    }
}

/// `INFO`'s text (or the edge's `/_edge/stats`, the same `key:value` lines) as a map.
/// Section headers (`# Stats`) and blank lines are skipped.
pub fn fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A field whose value is itself a list, as `INFO`'s `slave0:ip=..,port=..,lag=0` or
/// `db0:keys=3,expires=0`.
pub fn subfields(value: &str) -> BTreeMap<&str, &str> {
    value
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_text_becomes_fields() {
        let info = "# Stats\r\nkeyspace_hits:1\r\nhit_ratio:0.5000\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n";
        let f = fields(info);
        assert_eq!(f["keyspace_hits"], "1");
        assert_eq!(subfields(&f["db0"])["keys"], "3");
        let mut s = Sample::up();
        s.take(&f, &[("hit_ratio", "hit_ratio"), ("absent", "x")]);
        assert_eq!(s.metrics["hit_ratio"], 0.5);
        assert!(!s.metrics.contains_key("x"));
    }
}
