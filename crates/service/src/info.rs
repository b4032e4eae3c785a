//! `INFO`: named sections of `key:value` lines, as Redis prints them.

/// One section of `INFO`, e.g. `# Keyspace` with `db0:keys=3,expires=1`.
#[derive(Debug, Clone, Default)]
pub struct InfoSection {
    pub name: String,
    pub fields: Vec<(String, String)>,
}

impl InfoSection {
    pub fn new(name: impl Into<String>) -> Self {
        InfoSection {
            name: name.into(),
            fields: Vec::new(),
        }
    }

    /// Adds a field; returns `self` for chaining.
    pub fn field(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.fields.push((key.into(), value.to_string()));
        self
    }
}

/// A byte count as Redis prints `used_memory_human`: `1000B`, `1.50K`, `64.00M`, `2.00G`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

/// Joins sections of the same name (server fields after the service's) in first-seen
/// order, keeps those `wanted` selects (`INFO`, `INFO all`, `INFO clients stats`) and
/// renders them as Redis does: `# Name\r\nkey:value\r\n`, sections separated by a blank line.
pub fn render(sections: Vec<InfoSection>, wanted: &[String]) -> String {
    let mut merged: Vec<InfoSection> = Vec::new();
    for section in sections {
        match merged
            .iter_mut()
            .find(|s| s.name.eq_ignore_ascii_case(&section.name))
        {
            Some(existing) => existing.fields.extend(section.fields),
            None => merged.push(section),
        }
    }
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "default" | "everything"));
    let mut out = String::new();
    for section in merged {
        if !all && !wanted.iter().any(|w| w.eq_ignore_ascii_case(&section.name)) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        out.push_str("# ");
        let mut name = section.name.clone();
        if let Some(first) = name.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        out.push_str(&name);
        out.push_str("\r\n");
        for (k, v) in &section.fields {
            out.push_str(k);
            out.push(':');
            out.push_str(v);
            out.push_str("\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_bytes_as_redis_prints_them() {
        assert_eq!(human_bytes(1000), "1000B");
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(64 << 20), "64.00M");
    }
}
