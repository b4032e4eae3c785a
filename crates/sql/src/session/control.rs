//! Transaction control: the statements that start, end and mark transactions, and the
//! ones that choose their isolation level.
//!
//! - `BEGIN` / `START TRANSACTION [ISOLATION LEVEL ...]`, `COMMIT` / `END`,
//!   `ROLLBACK` / `ABORT`.
//! - `SAVEPOINT name`, `ROLLBACK TO [SAVEPOINT] name`, `RELEASE [SAVEPOINT] name`: a
//!   savepoint is a position in the transaction's undo and redo logs. Rolling back to it
//!   undoes everything after that position (newest first) and leaves the transaction
//!   usable again, even if it was in the failed state; releasing it just forgets the
//!   position. The savepoint itself stays after ROLLBACK TO, as in PostgreSQL.
//! - The isolation level, in every spelling a client or the course uses: `SET
//!   TRANSACTION ISOLATION LEVEL ...` (this transaction, before its first query), `SET
//!   SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL ...`, `SET
//!   default_transaction_isolation = '...'` and MySQL's `SET SESSION TRANSACTION
//!   ISOLATION LEVEL ...` (the session's default), `SET transaction_isolation = '...'`.
//!   `SHOW transaction_isolation` reports the level in force.

use sqlparser::ast::{Set, Statement, TransactionAccessMode, TransactionMode};

use super::{Block, Session, TxEffect};
use crate::error::SqlError;
use crate::executor::Output;
use crate::isolation::Isolation;

type Reply = Result<(Output, TxEffect), SqlError>;

fn tag(t: &str) -> Output {
    Output {
        tag: t.into(),
        ..Output::default()
    }
}

/// The isolation level named among a BEGIN's or SET TRANSACTION's modes, if any.
fn level_of(modes: &[TransactionMode]) -> Result<Option<Isolation>, SqlError> {
    let mut level = None;
    for mode in modes {
        match mode {
            TransactionMode::IsolationLevel(l) => level = Some(Isolation::from(l)),
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => {}
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => {
                return Err(SqlError::unsupported("READ ONLY transactions"));
            }
        }
    }
    Ok(level)
}

fn no_block(what: &str) -> SqlError {
    SqlError::new(
        "25P01",
        format!("{what} can only be used in transaction blocks"),
    )
}

fn no_savepoint(name: &str) -> SqlError {
    SqlError::new("3B001", format!("savepoint \"{name}\" does not exist"))
}

impl Session {
    /// The level the current (or next) transaction runs at.
    pub fn isolation(&self) -> Isolation {
        self.tx
            .as_ref()
            .map(|t| t.isolation)
            .or(self.next_isolation)
            .unwrap_or(self.characteristics)
    }

    /// A transaction-control statement, or `None` for any other. (An error here fails
    /// the block like any other: the caller aborts it.)
    pub(super) async fn control(&mut self, stmt: &Statement) -> Option<Reply> {
        let failed = self.block == Block::Failed;
        Some(match stmt {
            Statement::StartTransaction { .. } if failed => Err(SqlError::in_failed_transaction()),
            Statement::StartTransaction { modes, .. } => self.begin(modes),
            Statement::Commit { .. } => {
                let outcome = if failed {
                    self.end(false);
                    Ok((tag("ROLLBACK"), TxEffect::Ended))
                } else {
                    self.commit()
                        .await
                        .map(|_| (tag("COMMIT"), TxEffect::Ended))
                };
                self.reset_block();
                outcome
            }
            Statement::Rollback {
                savepoint: None, ..
            } => {
                self.end(false);
                self.reset_block();
                Ok((tag("ROLLBACK"), TxEffect::Ended))
            }
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => self.rollback_to(&name.value),
            _ if failed
                && matches!(
                    stmt,
                    Statement::Savepoint { .. }
                        | Statement::ReleaseSavepoint { .. }
                        | Statement::Set(Set::SetTransaction { .. })
                ) =>
            {
                Err(SqlError::in_failed_transaction())
            }
            Statement::Savepoint { name } => self.savepoint(&name.value),
            Statement::ReleaseSavepoint { name } => self.release(&name.value),
            Statement::Set(Set::SetTransaction {
                modes,
                session: true,
                ..
            }) => level_of(modes).map(|level| {
                if let Some(level) = level {
                    self.characteristics = level;
                }
                (tag("SET"), TxEffect::None)
            }),
            Statement::Set(Set::SetTransaction { modes, .. }) => match level_of(modes) {
                Ok(Some(level)) => self.set_transaction_level(level),
                Ok(None) => Ok((tag("SET"), TxEffect::None)),
                Err(e) => Err(e),
            },
            _ => return None,
        })
    }

    fn begin(&mut self, modes: &[TransactionMode]) -> Reply {
        let level = level_of(modes)?;
        if self.block == Block::InBlock {
            // PostgreSQL warns "there is already a transaction in progress" and goes on.
            return Ok((tag("BEGIN"), TxEffect::Began));
        }
        // From autocommit, or from the implicit transaction of a multi-statement query,
        // which BEGIN turns into an explicit block.
        self.block = Block::InBlock;
        if level.is_some() && self.tx.is_none() {
            self.next_isolation = level;
        }
        Ok((tag("BEGIN"), TxEffect::Began))
    }

    /// No BEGIN is open: autocommit, or an implicit transaction (which has no
    /// savepoints in PostgreSQL either).
    fn outside_block(&self) -> bool {
        matches!(self.block, Block::None | Block::Implicit)
    }

    /// Back to autocommit after COMMIT or ROLLBACK.
    fn reset_block(&mut self) {
        self.block = Block::None;
        self.next_isolation = None;
        self.savepoints.clear();
    }

    /// `SET TRANSACTION ISOLATION LEVEL` / `SET transaction_isolation`: only before the
    /// transaction's first query, because its snapshot may already be taken.
    pub(super) fn set_transaction_level(&mut self, level: Isolation) -> Reply {
        if self.block == Block::None {
            // PostgreSQL: a WARNING, and no effect.
            return Ok((tag("SET"), TxEffect::None));
        }
        if self.tx.is_some() {
            return Err(SqlError::new(
                "25001",
                "SET TRANSACTION ISOLATION LEVEL must be called before any query",
            ));
        }
        self.next_isolation = Some(level);
        Ok((tag("SET"), TxEffect::None))
    }

    fn savepoint(&mut self, name: &str) -> Reply {
        if self.outside_block() {
            return Err(no_block("SAVEPOINT"));
        }
        let mark = self.tx.as_mut().map_or((0, 0), |tx| tx.mark());
        self.savepoints.push((name.to_string(), mark));
        Ok((tag("SAVEPOINT"), TxEffect::None))
    }

    fn find_savepoint(&self, name: &str) -> Option<usize> {
        self.savepoints.iter().rposition(|(n, _)| n == name)
    }

    fn rollback_to(&mut self, name: &str) -> Reply {
        if self.outside_block() {
            return Err(no_block("ROLLBACK TO SAVEPOINT"));
        }
        let Some(at) = self.find_savepoint(name) else {
            return Err(no_savepoint(name));
        };
        let mark = self.savepoints[at].1;
        self.savepoints.truncate(at + 1);
        if let Some(tx) = &mut self.tx {
            self.db.engine().undo_to(tx, mark);
        }
        self.block = Block::InBlock;
        Ok((tag("ROLLBACK"), TxEffect::None))
    }

    fn release(&mut self, name: &str) -> Reply {
        if self.outside_block() {
            return Err(no_block("RELEASE SAVEPOINT"));
        }
        let Some(at) = self.find_savepoint(name) else {
            return Err(no_savepoint(name));
        };
        self.savepoints.truncate(at);
        Ok((tag("RELEASE"), TxEffect::None))
    }
}
