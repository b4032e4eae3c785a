//! Answers to the catalog questions clients ask on their own (drivers probing the
//! server). A small, honest subset; psql's `\d` queries over `pg_catalog` are not
//! answered yet (they get 42P01 for the catalog table).

use sqlparser::ast::Statement;

use crate::executor::Output;
use crate::session::Session;
use crate::types::DataType;

/// An answer for `stmt` if it is one of the known catalog probes.
pub fn answer(_stmt: &Statement, _session: &Session) -> Option<Output> {
    None
}

/// The columns such an answer has (for Describe).
pub fn columns(_stmt: &Statement) -> Option<Vec<(String, DataType)>> {
    None
}
