//! The schema as SQL, as `pg_dump --schema-only` writes it: what a checkpoint stores so
//! that recovery rebuilds the catalog by executing it.
//!
//! The definitions are written from the catalog as it is *now* — after any number of
//! ALTER TABLEs — not as the history of statements that built it. The order matters:
//! trigger functions; every table with its columns, keys, CHECKs and indexes; then the
//! foreign keys as `ALTER TABLE ... ADD CONSTRAINT` (so tables that reference each other
//! need no particular order); then materialized views, each after what it reads; then
//! triggers. Rows follow in the checkpoint, so nothing here validates existing data.

use crate::catalog::{Column, OnDelete, TableDef};
use crate::engine::Engine;
use crate::types::DataType;

/// The statements that recreate every function, table, view and trigger of `engine`.
pub fn schema(engine: &Engine) -> Vec<String> {
    let mut out: Vec<String> = engine.functions.values().map(|f| f.sql.clone()).collect();
    let tables: Vec<&TableDef> = engine
        .tables
        .values()
        .map(|t| &t.def)
        .filter(|d| d.view.is_none())
        .collect();
    for def in &tables {
        out.extend(table(def));
    }
    for def in &tables {
        out.extend(foreign_keys(engine, def));
    }
    // Views in dependency order: each once everything it reads exists.
    let mut views: Vec<&TableDef> = engine
        .tables
        .values()
        .map(|t| &t.def)
        .filter(|d| d.view.is_some())
        .collect();
    let mut done: Vec<&str> = Vec::new();
    while !views.is_empty() {
        let ready = views.iter().position(|v| {
            v.view.as_ref().is_some_and(|q| {
                crate::executor::relations(q)
                    .iter()
                    .all(|r| done.contains(&r.as_str()) || !views.iter().any(|o| o.name == *r))
            })
        });
        let v = views.remove(ready.unwrap_or(0));
        done.push(&v.name);
        if let Some(q) = &v.view {
            let columns: Vec<String> = v.columns.iter().map(|c| quote(&c.name)).collect();
            out.push(format!(
                "CREATE MATERIALIZED VIEW {} ({}) AS {q}",
                quote(&v.name),
                columns.join(", ")
            ));
        }
    }
    for def in engine.tables.values().map(|t| &t.def) {
        out.extend(def.triggers.iter().map(|t| t.sql(&quote(&def.name))));
    }
    out
}

/// An identifier, double-quoted (names are stored case-folded already).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column(c: &Column) -> String {
    if c.dropped {
        // A placeholder that keeps the slot; `table` drops it again.
        return format!("{} integer", quote(&c.name));
    }
    let ty = if c.serial {
        match c.ty {
            DataType::SmallInt => "smallserial".to_string(),
            DataType::BigInt => "bigserial".to_string(),
            _ => "serial".to_string(),
        }
    } else {
        c.type_name.clone()
    };
    let mut s = format!("{} {ty}", quote(&c.name));
    if let Some(g) = &c.generated {
        s.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
    }
    if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    if c.not_null && !c.serial {
        s.push_str(" NOT NULL");
    }
    s
}

fn names(def: &TableDef, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&i| quote(&def.columns[i].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CREATE TABLE with columns, keys and CHECKs; DROP COLUMN for dropped slots; indexes.
fn table(def: &TableDef) -> Vec<String> {
    let name = quote(&def.name);
    let mut parts: Vec<String> = def.columns.iter().map(column).collect();
    let mut indexes = Vec::new();
    for i in &def.indexes {
        let cols = names(def, &i.columns);
        if i.primary {
            parts.push(format!(
                "CONSTRAINT {} PRIMARY KEY ({cols})",
                quote(&i.name)
            ));
        } else {
            indexes.push(format!(
                "CREATE {}INDEX {} ON {name} ({cols})",
                if i.unique { "UNIQUE " } else { "" },
                quote(&i.name)
            ));
        }
    }
    for c in &def.checks {
        parts.push(format!("CONSTRAINT {} CHECK ({})", quote(&c.name), c.expr));
    }
    let mut out = vec![format!("CREATE TABLE {name} ({})", parts.join(", "))];
    for c in def.columns.iter().filter(|c| c.dropped) {
        out.push(format!("ALTER TABLE {name} DROP COLUMN {}", quote(&c.name)));
    }
    out.extend(indexes);
    out
}

/// ` ON UPDATE CASCADE ON DELETE SET NULL`, as pg_get_constraintdef writes the actions.
pub fn actions(fk: &crate::catalog::ForeignKey) -> String {
    let word = |a: OnDelete| match a {
        OnDelete::Cascade => Some("CASCADE"),
        OnDelete::SetNull => Some("SET NULL"),
        OnDelete::Restrict => None,
    };
    let mut s = String::new();
    if let Some(w) = word(fk.on_update) {
        s.push_str(&format!(" ON UPDATE {w}"));
    }
    if let Some(w) = word(fk.on_delete) {
        s.push_str(&format!(" ON DELETE {w}"));
    }
    s
}

fn foreign_keys(engine: &Engine, def: &TableDef) -> Vec<String> {
    def.foreign_keys
        .iter()
        .map(|fk| {
            let parent = engine
                .tables
                .get(&fk.parent)
                .map(|p| names(&p.def, &fk.parent_columns))
                .unwrap_or_default();
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({parent}){}",
                quote(&def.name),
                quote(&fk.name),
                names(def, &fk.columns),
                quote(&fk.parent),
                actions(fk)
            )
        })
        .collect()
}
