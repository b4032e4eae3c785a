//! VACUUM: reclaiming the row versions no snapshot can see any more.
//!
//! MVCC never overwrites: an UPDATE leaves the old version behind (with its `xmax` set)
//! and a DELETE only marks the row. Those versions must stay while some transaction may
//! still read them — one whose snapshot was taken before the deleting transaction
//! committed. After that they are *dead*: nobody can ever see them again, yet they take
//! memory and every index lookup and scan walks past them. VACUUM removes them.
//!
//! **The horizon.** Which versions can no snapshot see? Every snapshot in use belongs to
//! a running transaction, and a snapshot can only miss commits of transactions that were
//! still running when it was taken. So when a transaction begins, the engine notes the
//! oldest transaction running at that moment (`Engine::horizons`); the minimum over the
//! running transactions is the horizon. A version whose deleter committed and is older
//! than the horizon is seen as deleted by every present and future snapshot: dead.
//! Versions deleted more recently are "dead but not yet removable" — a long-running
//! transaction holds them back, the classic cause of table bloat in PostgreSQL.
//!
//! Removing a version also removes the index entries only it needed (an index maps a
//! key to a row if *some* version of the row has that key).

use crate::engine::Engine;
use crate::error::SqlError;
use crate::mvcc::{TxId, TxStatus};
use crate::storage::key_of;

/// A parsed `VACUUM [FULL] [FREEZE] [VERBOSE] [ANALYZE] [table [, ...]]` (or with the
/// options in parentheses).
#[derive(Debug, Clone, PartialEq)]
pub struct Vacuum {
    pub verbose: bool,
    /// Empty: every table.
    pub tables: Vec<String>,
}

/// What VACUUM did to one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub table: String,
    /// Dead versions removed.
    pub removed: usize,
    /// Versions left (live ones, and dead ones a snapshot may still need).
    pub remain: usize,
    /// Of those, deleted by a committed transaction some snapshot may not see yet.
    pub not_yet_removable: usize,
    pub index_entries_removed: usize,
}

impl Report {
    /// The line VACUUM VERBOSE sends (as an INFO notice), worded as PostgreSQL's.
    pub fn message(&self) -> String {
        format!(
            "finished vacuuming \"public.{}\": index entries removed: {}\ntuples: {} removed, {} remain, {} are dead but not yet removable",
            self.table,
            self.index_entries_removed,
            self.removed,
            self.remain,
            self.not_yet_removable
        )
    }
}

/// Parses a VACUUM command (sqlparser does not know PostgreSQL's form); `None` if the
/// text is not one.
pub fn parse(sql: &str) -> Option<Result<Vacuum, SqlError>> {
    let text = sql.trim().trim_end_matches(';').trim();
    let (head, rest) = text.split_at(
        text.find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    if !head.eq_ignore_ascii_case("vacuum") {
        return None;
    }
    let mut rest = rest.trim_start();
    let mut verbose = false;
    if let Some(inner) = rest.strip_prefix('(') {
        let Some((options, after)) = inner.split_once(')') else {
            return Some(Err(SqlError::syntax("syntax error at end of input", None)));
        };
        for option in options.split(',') {
            let mut words = option.split_whitespace();
            let name = words.next().unwrap_or("").to_ascii_lowercase();
            let value = words.next().map(str::to_ascii_lowercase);
            let on = !matches!(value.as_deref(), Some("false" | "off" | "0"));
            match name.as_str() {
                "verbose" => verbose = on,
                "full"
                | "freeze"
                | "analyze"
                | "skip_locked"
                | "index_cleanup"
                | "truncate"
                | "process_toast"
                | "parallel"
                | "disable_page_skipping"
                | "process_main" => {}
                other => {
                    return Some(Err(SqlError::syntax(
                        format!("unrecognized VACUUM option \"{other}\""),
                        None,
                    )));
                }
            }
        }
        rest = after.trim_start();
    }
    loop {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let lower = word.to_ascii_lowercase();
        if !["full", "freeze", "verbose", "analyze", "analyse"].contains(&lower.as_str()) {
            break;
        }
        verbose |= lower == "verbose";
        rest = rest[word.len()..].trim_start();
    }
    let mut tables = Vec::new();
    for t in rest.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let name = t.split('(').next().unwrap_or("").trim();
        let name = name.rsplit('.').next().unwrap_or(name);
        let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.to_string(),
            None => name.to_lowercase(),
        };
        tables.push(name);
    }
    Some(Ok(Vacuum { verbose, tables }))
}

/// The oldest transaction a running transaction's snapshot may not have seen commit;
/// `None` when nothing is running.
pub fn horizon(engine: &Engine) -> Option<TxId> {
    engine.horizons.values().min().copied()
}

/// Vacuums the named tables (all when empty).
pub fn run(engine: &mut Engine, vacuum: &Vacuum) -> Result<Vec<Report>, SqlError> {
    let names: Vec<String> = if vacuum.tables.is_empty() {
        engine.tables.keys().cloned().collect()
    } else {
        for t in &vacuum.tables {
            engine.table(t)?;
        }
        vacuum.tables.clone()
    };
    let horizon = horizon(engine);
    let mut reports = Vec::with_capacity(names.len());
    for name in names {
        reports.push(vacuum_table(engine, &name, horizon));
    }
    Ok(reports)
}

fn vacuum_table(engine: &mut Engine, name: &str, horizon: Option<TxId>) -> Report {
    let mut report = Report {
        table: name.to_string(),
        ..Report::default()
    };
    let Engine { tables, clog, .. } = engine;
    let Some(t) = tables.get_mut(name) else {
        return report;
    };
    let index_columns = t.index_columns();
    let deleted = |xmax: TxId| xmax != 0 && clog.status(xmax) == TxStatus::Committed;
    let dead = |xmax: TxId| deleted(xmax) && horizon.is_none_or(|h| xmax < h);
    let mut emptied = Vec::new();
    for (&row, chain) in t.heap.rows.iter_mut() {
        let before = chain.len();
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(chain)
            .into_iter()
            .partition(|v| dead(v.xmax));
        *chain = kept;
        report.removed += before - chain.len();
        report.remain += chain.len();
        report.not_yet_removable += chain.iter().filter(|v| deleted(v.xmax)).count();
        for v in &gone {
            for (tree, cols) in t.heap.indexes.iter_mut().zip(&index_columns) {
                let key = key_of(&v.values, cols);
                if !chain.iter().any(|k| key_of(&k.values, cols) == key) && tree.remove(&(key, row))
                {
                    report.index_entries_removed += 1;
                }
            }
        }
        if chain.is_empty() {
            emptied.push(row);
        }
    }
    for row in emptied {
        t.heap.rows.remove(&row);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_advances_while_transactions_keep_overlapping() {
        let mut e = Engine::default();
        let mut t1 = e.begin();
        let mut t2 = e.begin();
        assert_eq!(horizon(&e), Some(t1.id));
        e.finish(&mut t1, true);
        let mut t3 = e.begin();
        e.finish(&mut t2, true);
        let t4 = e.begin();
        e.finish(&mut t3, true);
        // Never a moment without a running transaction, yet the horizon moved on: t4
        // began while t3 ran, so only t3's commit might be unseen by t4's snapshots.
        assert_eq!(horizon(&e), Some(t3.id));
        assert!(t4.id > t3.id);
    }

    #[test]
    fn vacuum_commands_parse_as_postgresql_writes_them() {
        let p = |s: &str| parse(s).expect("a vacuum").expect("parses");
        assert_eq!(
            p("VACUUM"),
            Vacuum {
                verbose: false,
                tables: vec![]
            }
        );
        assert_eq!(
            p("vacuum verbose analyze Accounts, public.\"Mixed\";"),
            Vacuum {
                verbose: true,
                tables: vec!["accounts".into(), "Mixed".into()]
            }
        );
        assert_eq!(
            p("VACUUM (VERBOSE, ANALYZE) t"),
            Vacuum {
                verbose: true,
                tables: vec!["t".into()]
            }
        );
        assert!(parse("SELECT 1").is_none());
        assert!(parse("vacuumx").is_none());
    }
}
