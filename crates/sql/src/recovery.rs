//! Recovery: rebuilding the database from `checkpoint.N` + `wal.N` after a restart or a
//! crash.
//!
//! Because only committed transactions are ever written to the log (see `wal`), recovery
//! is *redo only*: load the checkpoint, then apply every complete commit record in log
//! order. A transaction that had not committed when the process died never reached the
//! log, so it is simply absent — atomicity across a crash for free. A record cut short
//! by the crash (a torn tail) was never acknowledged: it is dropped and the file
//! truncated to the last whole record, so new records follow valid ones.

use std::fs;
use std::path::Path;

use crate::engine::Engine;
use crate::executor::{Ctx, execute};
use crate::mvcc::FROZEN;
use crate::storage::Version;
use crate::wal::{self, Change};

/// Rebuilds the engine from `dir`; returns it and the generation whose log to append to.
pub fn recover(dir: &Path) -> Result<(Engine, u64), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut generation = 0u64;
    for entry in fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("checkpoint.")
            .and_then(|n| n.parse::<u64>().ok())
        {
            generation = generation.max(n);
        }
    }
    let mut engine = Engine::default();
    let checkpoint = wal::checkpoint_path(dir, generation);
    if checkpoint.exists() {
        let bytes = fs::read(&checkpoint).map_err(|e| format!("{}: {e}", checkpoint.display()))?;
        for record in wal::scan(&bytes, &checkpoint)?.records {
            apply(&mut engine, record)?;
        }
    }
    let log = wal::wal_path(dir, generation);
    if log.exists() {
        let bytes = fs::read(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let scan = wal::scan(&bytes, &log)?;
        let count = scan.records.len();
        for record in scan.records {
            apply(&mut engine, record)?;
        }
        if scan.valid_len < bytes.len() as u64 {
            tracing::warn!(
                "{}: dropping a torn tail of {} bytes (an unacknowledged commit)",
                log.display(),
                bytes.len() as u64 - scan.valid_len
            );
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .map_err(|e| e.to_string())?;
            f.set_len(scan.valid_len).map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())?;
        }
        tracing::info!(
            "recovered {count} committed transactions from {}",
            log.display()
        );
    }
    Ok((engine, generation))
}

/// Applies one committed record: its rows become versions created by [`FROZEN`].
pub fn apply(engine: &mut Engine, changes: Vec<Change>) -> Result<(), String> {
    for change in changes {
        match change {
            Change::Ddl(sql) => {
                engine.replaying = true;
                let statements = crate::parse::statements(&sql)
                    .map_err(|e| format!("replaying {sql}: {}", e.message))?;
                let mut tx = engine.begin();
                for stmt in &statements {
                    let snapshot = engine.snapshot(&tx);
                    let mut ctx = Ctx {
                        engine,
                        tx: &mut tx,
                        snapshot,
                        params: &[],
                        waited_in_subquery: Default::default(),
                    };
                    if let Err(e) = execute(&mut ctx, stmt) {
                        return Err(format!("replaying {sql}: {e:?}"));
                    }
                }
                engine.finish(&mut tx, true);
                engine.replaying = false;
            }
            Change::Put {
                table,
                row,
                mut values,
            } => {
                let t = engine
                    .tables
                    .get_mut(&table)
                    .ok_or_else(|| format!("log names unknown table {table}"))?;
                // A row written while another session's ALTER TABLE ADD COLUMN was in
                // flight and later rolled back is one value wider than the table.
                values.resize(t.def.columns.len(), crate::types::Value::Null);
                let cols = t.index_columns();
                t.heap.pop_version(row, &cols);
                t.heap.push_version(
                    row,
                    Version {
                        xmin: FROZEN,
                        xmax: 0,
                        values,
                    },
                    &cols,
                );
            }
            Change::Delete { table, row } => {
                let t = engine
                    .tables
                    .get_mut(&table)
                    .ok_or_else(|| format!("log names unknown table {table}"))?;
                let cols = t.index_columns();
                t.heap.pop_version(row, &cols);
            }
            Change::Sequence {
                table,
                column,
                value,
            } => {
                if let Some(t) = engine.tables.get_mut(&table) {
                    let s = t.heap.sequences.entry(column as usize).or_insert(0);
                    *s = (*s).max(value);
                }
            }
        }
    }
    Ok(())
}
