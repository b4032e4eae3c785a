//! psql's describe commands — `\d`, `\dt`, `\di`, `\dm`, `\d table`, `\d+ table` —
//! answered as PostgreSQL 15 answers them.
//!
//! psql has no protocol command for "describe": each backslash command is one or more
//! ordinary queries over PostgreSQL's system catalogs (`pg_class`, `pg_attribute`,
//! `pg_index`, `pg_constraint`, `pg_trigger`...), and psql lays out the rows itself.
//! `\d accounts` is about a dozen such queries: find the relation's oid by name, then its
//! kind and flags, columns, indexes, CHECKs, foreign keys both ways, triggers, and empty
//! answers for what this server does not have (policies, statistics objects,
//! publications, inheritance). Rather than store system tables, this module recognises
//! each query psql 15 sends (by the catalog it reads and its shape) and computes the rows
//! PostgreSQL would return from the server's own catalog. Oids are derived from names,
//! so the follow-up queries psql sends with an oid find the same relation.
//!
//! A query that merely resembles these is not answered here and goes to the executor
//! (which knows no `pg_catalog` and reports 42P01).

use crate::catalog::TableDef;
use crate::engine::Engine;
use crate::executor::Output;
use crate::types::{DataType, Value};

/// A relation's oid: stable for a name, above PostgreSQL's reserved range.
pub fn oid(name: &str) -> u32 {
    16384 + crc32c::crc32c(name.as_bytes()) % 2_000_000_000
}

/// The answer to one of psql's describe queries, if `sql` is one.
pub fn answer(sql: &str, engine: &Engine) -> Option<Output> {
    if !sql.contains("pg_catalog.") {
        return None;
    }
    let text = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // \d, \dt, \di, \dm: the list of relations of some kinds.
    if sql.contains("as \"Schema\"") && sql.contains("c.relkind IN (") {
        return Some(list(sql, engine));
    }
    // \d NAME step 1: which relations match the pattern.
    if sql.starts_with("SELECT c.oid,\n") && sql.contains("c.relname OPERATOR(pg_catalog.~)") {
        let pattern = quoted_after(sql, "c.relname OPERATOR(pg_catalog.~) ")?;
        let mut rows: Vec<Vec<String>> = engine
            .tables
            .keys()
            .filter(|n| matches(&pattern, n))
            .map(|n| vec![oid(n).to_string(), "public".into(), n.clone()])
            .collect();
        rows.sort();
        return Some(output(&["oid", "nspname", "relname"], rows));
    }
    let def = |column: &str| -> Option<&TableDef> {
        let o: u32 = quoted_after(sql, column)?.parse().ok()?;
        engine
            .tables
            .values()
            .map(|t| &t.def)
            .find(|d| oid(&d.name) == o)
    };
    let b = |x: bool| if x { "t" } else { "f" }.to_string();
    if sql.starts_with("SELECT c.relchecks, c.relkind") {
        let rows = def("WHERE c.oid = ")
            .map(|d| {
                let mut r = vec![
                    d.checks.len().to_string(),
                    if d.view.is_some() { "m" } else { "r" }.into(),
                    b(!d.indexes.is_empty()),
                    b(d.view.is_some()),
                    // Foreign keys are triggers in PostgreSQL, on both tables; psql
                    // asks for them only when this flag is set.
                    b(!d.triggers.is_empty()
                        || !d.foreign_keys.is_empty()
                        || engine
                            .tables
                            .values()
                            .any(|t| t.def.foreign_keys.iter().any(|f| f.parent == d.name))),
                ];
                r.extend(text(&["f", "f", "f", "f", "", "0", "", "p", "d", "heap"]));
                vec![r]
            })
            .unwrap_or_default();
        return Some(output(
            &[
                "relchecks",
                "relkind",
                "relhasindex",
                "relhasrules",
                "relhastriggers",
                "relrowsecurity",
                "relforcerowsecurity",
                "relhasoids",
                "relispartition",
                "?column?",
                "reltablespace",
                "reloftype",
                "relpersistence",
                "relreplident",
                "amname",
            ],
            rows,
        ));
    }
    if sql.starts_with("SELECT a.attname,") && sql.contains("FROM pg_catalog.pg_attribute a") {
        // `\d+` asks for four more: storage, compression, statistics target, comment.
        let verbose = sql.contains("a.attstorage");
        let rows = def("WHERE a.attrelid = ")
            .map(|d| attributes(d, verbose))
            .unwrap_or_default();
        let mut columns = vec![
            "attname",
            "format_type",
            "pg_get_expr",
            "attnotnull",
            "attcollation",
            "attidentity",
            "attgenerated",
        ];
        if verbose {
            columns.extend([
                "attstorage",
                "attcompression",
                "attstattarget",
                "col_description",
            ]);
        }
        let mut out = output(&columns, Vec::new());
        out.rows = rows;
        out.tag = format!("SELECT {}", out.rows.len());
        return Some(out);
    }
    // `\d+` of a materialized view: its query.
    if sql.starts_with("SELECT pg_catalog.pg_get_viewdef(") {
        let rows = def("pg_get_viewdef(")
            .and_then(|d| d.view.as_ref())
            .map(|q| vec![vec![format!(" {q};")]])
            .unwrap_or_default();
        return Some(output(&["pg_get_viewdef"], rows));
    }
    if sql.starts_with("SELECT c2.relname, i.indisprimary") {
        let rows = def("WHERE c.oid = ").map(indexes).unwrap_or_default();
        return Some(with_nulls(
            &[
                "relname",
                "indisprimary",
                "indisunique",
                "indisclustered",
                "indisvalid",
                "pg_get_indexdef",
                "pg_get_constraintdef",
                "contype",
                "condeferrable",
                "condeferred",
                "indisreplident",
                "reltablespace",
            ],
            rows,
        ));
    }
    if sql.starts_with("SELECT r.conname, pg_catalog.pg_get_constraintdef(r.oid, true)")
        && sql.contains("r.contype = 'c'")
    {
        let mut rows: Vec<Vec<String>> = def("WHERE r.conrelid = ")
            .map(|d| {
                d.checks
                    .iter()
                    .map(|c| vec![c.name.clone(), format!("CHECK ({})", c.expr)])
                    .collect()
            })
            .unwrap_or_default();
        rows.sort();
        return Some(output(&["conname", "pg_get_constraintdef"], rows));
    }
    if sql.starts_with("SELECT true as sametable, conname,") {
        let mut rows: Vec<Vec<String>> = def("WHERE r.conrelid = ")
            .map(|d| {
                d.foreign_keys
                    .iter()
                    .map(|fk| {
                        vec![
                            "t".into(),
                            fk.name.clone(),
                            fk_def(engine, d, fk),
                            d.name.clone(),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.sort_by(|a, b| a[1].cmp(&b[1]));
        return Some(output(&["sametable", "conname", "condef", "ontable"], rows));
    }
    if sql.starts_with("SELECT conname, conrelid::pg_catalog.regclass AS ontable,") {
        let parent = def("pg_catalog.pg_partition_ancestors(");
        let mut rows: Vec<Vec<String>> = Vec::new();
        if let Some(p) = parent {
            for child in engine.tables.values().map(|t| &t.def) {
                for fk in child.foreign_keys.iter().filter(|f| f.parent == p.name) {
                    rows.push(vec![
                        fk.name.clone(),
                        child.name.clone(),
                        fk_def(engine, child, fk),
                    ]);
                }
            }
        }
        rows.sort();
        return Some(output(&["conname", "ontable", "condef"], rows));
    }
    if sql.starts_with("SELECT t.tgname, pg_catalog.pg_get_triggerdef(t.oid, true)") {
        let mut rows: Vec<Vec<Value>> = def("WHERE t.tgrelid = ")
            .map(|d| {
                d.triggers
                    .iter()
                    .map(|t| {
                        vec![
                            Value::Text(t.name.clone()),
                            Value::Text(t.sql(&d.name)),
                            Value::Text("O".into()),
                            Value::Text("f".into()),
                            Value::Null,
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.sort_by_key(|r| r[0].to_string());
        let mut out = output(
            &[
                "tgname",
                "pg_get_triggerdef",
                "tgenabled",
                "tgisinternal",
                "parent",
            ],
            Vec::new(),
        );
        out.tag = format!("SELECT {}", rows.len());
        out.rows = rows;
        return Some(out);
    }
    // What this server has none of: row-level security policies, extended statistics,
    // publications, inheritance and partitions, rewrite rules.
    let empty: &[(&str, &[&str])] = &[
        (
            "FROM pg_catalog.pg_policy pol",
            &[
                "polname",
                "polpermissive",
                "array_to_string",
                "pg_get_expr",
                "pg_get_expr",
                "cmd",
            ],
        ),
        (
            "FROM pg_catalog.pg_statistic_ext",
            &[
                "oid",
                "stxrelid",
                "nsp",
                "stxname",
                "columns",
                "ndist_enabled",
                "deps_enabled",
                "mcv_enabled",
                "stxstattarget",
            ],
        ),
        (
            "FROM pg_catalog.pg_publication p",
            &["pubname", "?column?", "?column?"],
        ),
        ("i.inhparent AND i.inhrelid", &["oid"]),
        // Rules other than a view's own `_RETURN` (`\d+` of a materialized view).
        ("FROM pg_catalog.pg_rewrite r", &["rulename", "btrim"]),
        (
            "i.inhrelid AND i.inhparent",
            &["oid", "relkind", "inhdetachpending", "pg_get_expr"],
        ),
    ];
    for (marker, columns) in empty {
        if sql.contains(marker) {
            return Some(output(columns, Vec::new()));
        }
    }
    None
}

/// `\d`, `\dt`, `\di`, `\dm` (the kinds are in the query's `c.relkind IN (...)`).
fn list(sql: &str, engine: &Engine) -> Output {
    let kinds: String = sql
        .split("c.relkind IN (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect();
    let pattern = quoted_after(sql, "c.relname OPERATOR(pg_catalog.~) ");
    let with_table = sql.contains("as \"Table\"");
    let mut rows: Vec<Vec<String>> = Vec::new();
    for t in engine.tables.values().map(|t| &t.def) {
        let kind = if t.view.is_some() { 'm' } else { 'r' };
        if kinds.contains(kind) {
            let name = if kind == 'm' {
                "materialized view"
            } else {
                "table"
            };
            rows.push(vec![
                "public".into(),
                t.name.clone(),
                name.into(),
                "infralab".into(),
            ]);
        }
        if kinds.contains('i') {
            for i in &t.indexes {
                rows.push(vec![
                    "public".into(),
                    i.name.clone(),
                    "index".into(),
                    "infralab".into(),
                    t.name.clone(),
                ]);
            }
        }
    }
    rows.retain(|r| pattern.as_ref().is_none_or(|p| matches(p, &r[1])));
    for r in &mut rows {
        r.truncate(if with_table { 5 } else { 4 });
    }
    rows.sort();
    let mut columns = vec!["Schema", "Name", "Type", "Owner"];
    if with_table {
        columns.push("Table");
    }
    output(&columns, rows)
}

/// How PostgreSQL stores a type's values (`attstorage`, `\d+`'s Storage column):
/// fixed-size types `p`lain in the row; `numeric` `m`ain (compressible, kept in the row
/// if it can be); text e`x`tended (compressed, then moved out of line to TOAST).
fn storage(ty: DataType) -> &'static str {
    match ty {
        DataType::Text | DataType::Varchar(_) => "x",
        DataType::Numeric(_) => "m",
        _ => "p",
    }
}

/// One row per live column, as psql's `\d` (and with `verbose`, `\d+`) query asks.
fn attributes(d: &TableDef, verbose: bool) -> Vec<Vec<Value>> {
    d.live_columns()
        .into_iter()
        .map(|i| {
            let c = &d.columns[i];
            let default = if let Some(g) = &c.generated {
                Value::Text(g.to_string())
            } else if c.serial {
                Value::Text(format!("nextval('{}_{}_seq'::regclass)", d.name, c.name))
            } else {
                c.default
                    .as_ref()
                    .map_or(Value::Null, |e| Value::Text(e.to_string()))
            };
            let mut row = vec![
                Value::Text(c.name.clone()),
                Value::Text(c.type_name.clone()),
                default,
                Value::Text(if c.not_null { "t" } else { "f" }.into()),
                Value::Null,
                Value::Text(String::new()),
                Value::Text(if c.generated.is_some() { "s" } else { "" }.into()),
            ];
            if verbose {
                // No compression method chosen, the default statistics target, no
                // COMMENT (this server has no COMMENT ON).
                row.extend([
                    Value::Text(storage(c.ty).into()),
                    Value::Text(String::new()),
                    Value::Null,
                    Value::Null,
                ]);
            }
            row
        })
        .collect()
}

fn column_list(d: &TableDef, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&c| d.columns[c].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn indexes(d: &TableDef) -> Vec<Vec<Value>> {
    let mut rows: Vec<(bool, String, Vec<Value>)> = d
        .indexes
        .iter()
        .map(|i| {
            let cols = column_list(d, &i.columns);
            let t = |s: &str| Value::Text(s.to_string());
            let (condef, contype) = match (i.primary, i.constraint) {
                (true, _) => (t(&format!("PRIMARY KEY ({cols})")), t("p")),
                (false, true) => (t(&format!("UNIQUE ({cols})")), t("u")),
                _ => (Value::Null, Value::Null),
            };
            let b = |x: bool| t(if x { "t" } else { "f" });
            (
                i.primary,
                i.name.clone(),
                vec![
                    t(&i.name),
                    b(i.primary),
                    b(i.unique),
                    b(false),
                    b(true),
                    t(&format!(
                        "CREATE {}INDEX {} ON {} USING btree ({cols})",
                        if i.unique { "UNIQUE " } else { "" },
                        i.name,
                        d.name
                    )),
                    condef.clone(),
                    contype,
                    if condef.is_null() {
                        Value::Null
                    } else {
                        b(false)
                    },
                    if condef.is_null() {
                        Value::Null
                    } else {
                        b(false)
                    },
                    b(false),
                    t("0"),
                ],
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    rows.into_iter().map(|(_, _, r)| r).collect()
}

/// `FOREIGN KEY (a) REFERENCES parent(b) ON DELETE CASCADE`, as pg_get_constraintdef.
fn fk_def(engine: &Engine, d: &TableDef, fk: &crate::catalog::ForeignKey) -> String {
    let parent_cols = engine
        .tables
        .get(&fk.parent)
        .map(|p| column_list(&p.def, &fk.parent_columns))
        .unwrap_or_default();
    format!(
        "FOREIGN KEY ({}) REFERENCES {}({parent_cols}){}",
        column_list(d, &fk.columns),
        fk.parent,
        crate::dump::actions(fk)
    )
}

fn output(columns: &[&str], rows: Vec<Vec<String>>) -> Output {
    with_nulls(
        columns,
        rows.into_iter()
            .map(|r| r.into_iter().map(Value::Text).collect())
            .collect(),
    )
}

fn with_nulls(columns: &[&str], rows: Vec<Vec<Value>>) -> Output {
    Output {
        columns: columns
            .iter()
            .map(|c| (c.to_string(), DataType::Text))
            .collect(),
        tag: format!("SELECT {}", rows.len()),
        rows,
        returns_rows: true,
        copy_in: None,
    }
}

/// The single-quoted literal that follows `marker` in `sql`.
fn quoted_after(sql: &str, marker: &str) -> Option<String> {
    let rest = &sql[sql.find(marker)? + marker.len()..];
    let rest = rest.strip_prefix('\'')?;
    Some(rest[..rest.find('\'')?].to_string())
}

/// psql turns a `\d` pattern into an anchored regular expression (`acc*` becomes
/// `^(acc.*)$`); this matches the part of that language psql produces: literals,
/// `.`, `.*` and backslash escapes.
pub fn matches(regex: &str, name: &str) -> bool {
    let inner = regex
        .strip_prefix("^(")
        .and_then(|r| r.strip_suffix(")$"))
        .unwrap_or(regex);
    let mut atoms: Vec<(Option<char>, bool)> = Vec::new(); // (char or any, repeated)
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        let atom = match c {
            '.' => None,
            '\\' => chars.next(),
            other => Some(other),
        };
        let star = chars.peek() == Some(&'*');
        if star {
            chars.next();
        }
        atoms.push((atom, star));
    }
    fn go(atoms: &[(Option<char>, bool)], s: &[char]) -> bool {
        match atoms.split_first() {
            None => s.is_empty(),
            Some((&(atom, star), rest)) => {
                let fits = |c: char| atom.is_none_or(|a| a == c);
                if star {
                    go(rest, s) || (!s.is_empty() && fits(s[0]) && go(atoms, &s[1..]))
                } else {
                    !s.is_empty() && fits(s[0]) && go(rest, &s[1..])
                }
            }
        }
    }
    let s: Vec<char> = name.chars().collect();
    go(&atoms, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_patterns_match_as_their_regular_expressions() {
        assert!(matches("^(accounts)$", "accounts"));
        assert!(!matches("^(accounts)$", "accounts2"));
        assert!(matches("^(acc.*)$", "accounts"));
        assert!(matches("^(a.c)$", "abc"));
        assert!(!matches("^(a.c)$", "ac"));
        assert!(matches("^(my\\_t)$", "my_t"));
    }
}
