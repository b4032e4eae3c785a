//! The plan cache: a prepared statement keeps its plan between executions.
//!
//! Parse happens once per prepared statement, but planning depends on the catalog —
//! which tables exist, their columns, their indexes — and the catalog can change between
//! two Executes of the same statement (another session runs `ALTER TABLE`, `DROP TABLE`
//! then `CREATE TABLE` again, `CREATE INDEX`). PostgreSQL's plancache (`plancache.c`)
//! keeps each prepared statement's plan together with what it depended on and throws
//! the plan away when one of those changes (an invalidation message), then plans again
//! at the next execution. Here the dependency is coarser and as safe: the engine keeps a
//! *catalog version* that every DDL statement bumps (and a rollback of DDL bumps again);
//! a cached plan records the version it was made at, and is used only while the version
//! is still the same. The check and the planning both happen under the engine lock, so
//! no DDL can slip in between the check and the use.
//!
//! What is cached is the compiled [`PointQuery`] — the shape that repeats the most, one
//! row by its key — or the knowledge that the statement is not one, so that other
//! statements pay one version comparison and take the general path.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sqlparser::ast::Statement;

use crate::engine::Engine;
use crate::executor::PointQuery;

/// One prepared statement's cached plan, with the catalog version it was made at.
#[derive(Debug, Default)]
pub struct PlanCache {
    cached: Mutex<Option<(u64, Option<Arc<PointQuery>>)>>,
}

impl PlanCache {
    /// `stmt`'s point lookup, planned again only if the catalog has changed since the
    /// last time. Call with the engine locked.
    pub fn point(&self, engine: &Engine, stmt: &Statement) -> Option<Arc<PointQuery>> {
        let version = engine.catalog_version.load(Ordering::Acquire);
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, plan)) = cached.as_ref()
            && *at == version
        {
            return plan.clone();
        }
        let plan = PointQuery::compile(engine, stmt).map(Arc::new);
        *cached = Some((version, plan.clone()));
        plan
    }
}
