//! The catalog: which tables exist, their columns, types and constraints, and their
//! indexes — the schema the planner and the constraint checks read.
//!
//! A [`TableDef`] is built from `CREATE TABLE` and changed by `ALTER TABLE`; a checkpoint
//! writes it back out as SQL ([`crate::dump`]) and recovery replays that.

use sqlparser::ast::{self, ColumnOption, Expr, ReferentialAction, TableConstraint};

use crate::error::SqlError;
use crate::types::DataType;

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: DataType,
    pub not_null: bool,
    pub default: Option<Expr>,
    /// SERIAL/BIGSERIAL/IDENTITY: the default is the table's next sequence value.
    pub serial: bool,
    /// The declared type as PostgreSQL's `format_type` prints it (`numeric(12,2)`).
    pub type_name: String,
    /// `GENERATED ALWAYS AS (expr) STORED`: computed from the row's other columns on
    /// every insert and update, stored like any other value (see `generated`).
    pub generated: Option<Expr>,
    /// Dropped by `ALTER TABLE ... DROP COLUMN`. As in PostgreSQL the column keeps its
    /// slot in every row (nothing is rewritten): it is renamed to [`DROPPED_PREFIX`]`N`,
    /// hidden from `*`, column lists and `\d`, and holds NULL in rows written since.
    pub dropped: bool,
}

/// The name a dropped column takes (PostgreSQL's `........pg.dropped.N........`): no
/// query can name it, and it keeps its position in the row.
pub const DROPPED_PREFIX: &str = "........pg.dropped.";

/// An index over some columns: a B-tree from key to row ids (see `storage`).
#[derive(Debug, Clone)]
pub struct IndexDef {
    pub name: String,
    pub columns: Vec<usize>,
    pub unique: bool,
    pub primary: bool,
    /// Made by a PRIMARY KEY or UNIQUE constraint (not by CREATE INDEX): `\d` tells
    /// them apart, and the constraint can be dropped by name.
    pub constraint: bool,
}

/// A foreign key's referential action, for ON DELETE and for ON UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// RESTRICT and NO ACTION (checked at the statement, not deferred).
    Restrict,
    Cascade,
    SetNull,
}

#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<usize>,
    pub parent: String,
    pub parent_columns: Vec<usize>,
    pub on_delete: OnDelete,
    /// What a change of the referenced key does to referencing rows (CASCADE: they
    /// take the new key; SET NULL; RESTRICT refuses the change).
    pub on_update: OnDelete,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub expr: Expr,
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<Column>,
    pub indexes: Vec<IndexDef>,
    pub checks: Vec<Check>,
    pub foreign_keys: Vec<ForeignKey>,
    /// `CREATE TRIGGER ... ON` this table.
    pub triggers: Vec<crate::triggers::TriggerDef>,
    /// A materialized view's defining query (its rows are the stored result of the
    /// last `REFRESH`); `None` for a table.
    pub view: Option<Box<ast::Query>>,
}

impl TableDef {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn column_or_err(&self, name: &str) -> Result<usize, SqlError> {
        self.column(name).ok_or_else(|| {
            SqlError::new(
                "42703",
                format!(
                    "column \"{name}\" of relation \"{}\" does not exist",
                    self.name
                ),
            )
        })
    }

    /// The columns a query can see, in order (all but dropped ones).
    pub fn live_columns(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&i| !self.columns[i].dropped)
            .collect()
    }

    /// Is `name` taken by a constraint of this table (index, CHECK or foreign key)?
    pub fn has_constraint(&self, name: &str) -> bool {
        self.indexes.iter().any(|i| i.name == name)
            || self.checks.iter().any(|c| c.name == name)
            || self.foreign_keys.iter().any(|f| f.name == name)
    }

    pub fn primary_key(&self) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.primary)
    }

    /// A unique index on exactly these columns (what a foreign key must reference).
    pub fn unique_index_on(&self, columns: &[usize]) -> Option<usize> {
        self.indexes
            .iter()
            .position(|i| i.unique && i.columns == columns)
    }
}

/// Lower-cases unquoted identifiers, as PostgreSQL folds them.
pub fn ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The last part of a possibly schema-qualified name (`public.accounts` -> `accounts`).
pub fn object_name(name: &ast::ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(ident)
        .unwrap_or_default()
}

/// Maps a SQL type name to ours; `serial` says whether it was SERIAL/BIGSERIAL.
pub fn data_type(t: &ast::DataType) -> Result<(DataType, bool), SqlError> {
    use ast::DataType as T;
    let length = |l: &Option<ast::CharacterLength>| match l {
        Some(ast::CharacterLength::IntegerLength { length, .. }) => Some(*length as u32),
        _ => None,
    };
    Ok(match t {
        T::SmallInt(_) | T::Int2(_) => (DataType::SmallInt, false),
        T::Int(_) | T::Integer(_) | T::Int4(_) => (DataType::Int, false),
        T::BigInt(_) | T::Int8(_) => (DataType::BigInt, false),
        T::Real | T::Float4 | T::Float8 | T::Double(_) | T::DoublePrecision | T::Float(_) => {
            (DataType::Double, false)
        }
        T::Numeric(info) | T::Decimal(info) => (
            DataType::Numeric(match info {
                ast::ExactNumberInfo::PrecisionAndScale(p, s) => {
                    Some((*p as u32, (*s).max(0) as u32))
                }
                ast::ExactNumberInfo::Precision(p) => Some((*p as u32, 0)),
                ast::ExactNumberInfo::None => None,
            }),
            false,
        ),
        T::Text | T::String(_) => (DataType::Text, false),
        T::Varchar(l) | T::CharacterVarying(l) | T::Char(l) | T::Character(l) => {
            (DataType::Varchar(length(l)), false)
        }
        T::Bool | T::Boolean => (DataType::Bool, false),
        T::Timestamp(..) | T::Date | T::Datetime(_) => (DataType::Timestamp, false),
        T::Custom(name, _) => match object_name(name).as_str() {
            "serial" | "serial4" => (DataType::Int, true),
            "bigserial" | "serial8" => (DataType::BigInt, true),
            "smallserial" | "serial2" => (DataType::SmallInt, true),
            "timestamptz" => (DataType::Timestamp, false),
            "int4" => (DataType::Int, false),
            other => {
                return Err(SqlError::new(
                    "42704",
                    format!("type \"{other}\" does not exist"),
                ));
            }
        },
        other => return Err(SqlError::unsupported(format!("type {other}"))),
    })
}

/// A declared type as PostgreSQL's `format_type` prints it (what `\d` shows).
pub fn type_name(t: &ast::DataType, ty: DataType) -> String {
    use ast::DataType as T;
    match t {
        T::Numeric(ast::ExactNumberInfo::PrecisionAndScale(p, s))
        | T::Decimal(ast::ExactNumberInfo::PrecisionAndScale(p, s)) => format!("numeric({p},{s})"),
        T::Numeric(ast::ExactNumberInfo::Precision(p))
        | T::Decimal(ast::ExactNumberInfo::Precision(p)) => format!("numeric({p},0)"),
        T::Char(Some(ast::CharacterLength::IntegerLength { length, .. }))
        | T::Character(Some(ast::CharacterLength::IntegerLength { length, .. })) => {
            format!("character({length})")
        }
        T::Real | T::Float4 => "real".into(),
        T::Custom(name, _) if object_name(name) == "timestamptz" => {
            "timestamp with time zone".into()
        }
        T::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            "timestamp with time zone".into()
        }
        T::Date => "date".into(),
        _ => ty.pg_name(),
    }
}

fn index_columns(def: &TableDef, cols: &[ast::IndexColumn]) -> Result<Vec<usize>, SqlError> {
    cols.iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) => def.column_or_err(&ident(i)),
            other => Err(SqlError::unsupported(format!(
                "index on expression {other}"
            ))),
        })
        .collect()
}

/// One column of `CREATE TABLE` or `ALTER TABLE ADD COLUMN`. Its column constraints
/// (PRIMARY KEY, UNIQUE, REFERENCES, CHECK) are pushed to `constraints` as the table
/// constraints they are short for.
pub fn column_from_ast(
    table: &str,
    col: &ast::ColumnDef,
    constraints: &mut Vec<TableConstraint>,
) -> Result<Column, SqlError> {
    let cname = ident(&col.name);
    let (ty, serial) = data_type(&col.data_type)?;
    let mut column = Column {
        name: cname.clone(),
        ty,
        not_null: serial,
        default: None,
        serial,
        type_name: type_name(&col.data_type, ty),
        generated: None,
        dropped: false,
    };
    let me = vec![ast::IndexColumn {
        column: ast::OrderByExpr {
            expr: Expr::Identifier(col.name.clone()),
            options: ast::OrderByOptions {
                sort: None,
                nulls_first: None,
            },
            with_fill: None,
        },
        operator_class: None,
    }];
    for opt in &col.options {
        match &opt.option {
            ColumnOption::Null => column.not_null = false,
            ColumnOption::NotNull => column.not_null = true,
            ColumnOption::Default(e) => column.default = Some(e.clone()),
            ColumnOption::PrimaryKey(pk) => {
                let mut pk = pk.clone();
                pk.columns = me.clone();
                constraints.push(TableConstraint::PrimaryKey(pk));
            }
            ColumnOption::Unique(u) => {
                let mut u = u.clone();
                u.columns = me.clone();
                constraints.push(TableConstraint::Unique(u));
            }
            ColumnOption::ForeignKey(fk) => {
                let mut fk = fk.clone();
                fk.columns = vec![col.name.clone()];
                constraints.push(TableConstraint::ForeignKey(fk));
            }
            ColumnOption::Check(c) => {
                let mut c = c.clone();
                if c.name.is_none() {
                    c.name = Some(ast::Ident::new(format!("{table}_{cname}_check")));
                }
                constraints.push(TableConstraint::Check(c));
            }
            ColumnOption::Generated {
                generation_expr: None,
                ..
            } => {
                column.serial = true;
                column.not_null = true;
            }
            ColumnOption::Generated {
                generation_expr: Some(e),
                generation_expr_mode,
                ..
            } => {
                if matches!(
                    generation_expr_mode,
                    Some(ast::GeneratedExpressionMode::Virtual)
                ) {
                    return Err(SqlError::unsupported("virtual generated columns"));
                }
                column.generated = Some(e.clone());
            }
            other => return Err(SqlError::unsupported(format!("column option {other}"))),
        }
    }
    if column.generated.is_some() && (column.default.is_some() || column.serial) {
        return Err(SqlError::syntax(
            format!(
                "both default and generation expression specified for column \"{cname}\" of table \"{table}\""
            ),
            None,
        ));
    }
    Ok(column)
}

/// Builds a table definition from `CREATE TABLE`. `parent` looks up a referenced table.
pub fn table_from_ast(
    create: &ast::CreateTable,
    parent: &dyn Fn(&str) -> Option<TableDef>,
) -> Result<TableDef, SqlError> {
    let name = object_name(&create.name);
    let mut def = TableDef {
        name: name.clone(),
        columns: Vec::new(),
        indexes: Vec::new(),
        checks: Vec::new(),
        foreign_keys: Vec::new(),
        triggers: Vec::new(),
        view: None,
    };
    let mut constraints: Vec<TableConstraint> = create.constraints.clone();
    for col in &create.columns {
        let column = column_from_ast(&name, col, &mut constraints)?;
        add_column(&mut def, column)?;
    }
    for c in &constraints {
        add_constraint(&mut def, c, parent)?;
    }
    crate::generated::check_definitions(&def)?;
    Ok(def)
}

/// Appends a column (42701 if the name is taken).
pub fn add_column(def: &mut TableDef, column: Column) -> Result<(), SqlError> {
    if def.column(&column.name).is_some() {
        return Err(SqlError::new(
            "42701",
            format!(
                "column \"{}\" of relation \"{}\" already exists",
                column.name, def.name
            ),
        ));
    }
    def.columns.push(column);
    Ok(())
}

/// Adds a table constraint to a definition: PRIMARY KEY and UNIQUE become unique
/// indexes (their entries are built by the caller), CHECK and FOREIGN KEY are checked
/// on every write from now on. Rows already stored are the caller's to validate.
pub fn add_constraint(
    def: &mut TableDef,
    c: &TableConstraint,
    parent: &dyn Fn(&str) -> Option<TableDef>,
) -> Result<(), SqlError> {
    let name = def.name.clone();
    let taken = |def: &TableDef, n: &str| -> Result<(), SqlError> {
        if def.has_constraint(n) {
            return Err(SqlError::new(
                "42710",
                format!(
                    "constraint \"{n}\" for relation \"{}\" already exists",
                    def.name
                ),
            ));
        }
        Ok(())
    };
    match c {
        TableConstraint::PrimaryKey(pk) => {
            if def.primary_key().is_some() {
                return Err(SqlError::new(
                    "42P16",
                    format!("multiple primary keys for table \"{name}\" are not allowed"),
                ));
            }
            let columns = index_columns(def, &pk.columns)?;
            for &i in &columns {
                def.columns[i].not_null = true;
            }
            let iname = pk
                .name
                .as_ref()
                .map(ident)
                .unwrap_or_else(|| format!("{name}_pkey"));
            taken(def, &iname)?;
            def.indexes.push(IndexDef {
                name: iname,
                columns,
                unique: true,
                primary: true,
                constraint: true,
            });
        }
        TableConstraint::Unique(u) => {
            let columns = index_columns(def, &u.columns)?;
            let cols: Vec<&str> = columns
                .iter()
                .map(|&i| def.columns[i].name.as_str())
                .collect();
            let iname = u
                .name
                .as_ref()
                .map(ident)
                .unwrap_or_else(|| format!("{name}_{}_key", cols.join("_")));
            taken(def, &iname)?;
            def.indexes.push(IndexDef {
                name: iname,
                columns,
                unique: true,
                primary: false,
                constraint: true,
            });
        }
        TableConstraint::Check(c) => {
            let cname = c.name.as_ref().map(ident).unwrap_or_else(|| {
                format!(
                    "{name}_check{}",
                    if def.checks.is_empty() {
                        String::new()
                    } else {
                        def.checks.len().to_string()
                    }
                )
            });
            taken(def, &cname)?;
            def.checks.push(Check {
                name: cname,
                expr: (*c.expr).clone(),
            })
        }
        TableConstraint::ForeignKey(fk) => {
            let columns: Vec<usize> = fk
                .columns
                .iter()
                .map(|i| def.column_or_err(&ident(i)))
                .collect::<Result<_, _>>()?;
            let parent_name = object_name(&fk.foreign_table);
            let parent_def = if parent_name == name {
                Some(def.clone())
            } else {
                parent(&parent_name)
            }
            .ok_or_else(|| SqlError::undefined_table(&parent_name))?;
            if parent_def.view.is_some() {
                return Err(SqlError::new(
                    "42809",
                    format!("referenced relation \"{parent_name}\" is not a table"),
                ));
            }
            let parent_columns: Vec<usize> = if fk.referred_columns.is_empty() {
                parent_def
                    .primary_key()
                    .map(|pk| pk.columns.clone())
                    .ok_or_else(|| {
                        SqlError::new(
                            "42830",
                            format!(
                                "there is no primary key for referenced table \"{parent_name}\""
                            ),
                        )
                    })?
            } else {
                fk.referred_columns
                    .iter()
                    .map(|i| parent_def.column_or_err(&ident(i)))
                    .collect::<Result<_, _>>()?
            };
            if parent_def.unique_index_on(&parent_columns).is_none() {
                return Err(SqlError::new(
                    "42830",
                    format!(
                        "there is no unique constraint matching given keys for referenced table \"{parent_name}\""
                    ),
                ));
            }
            let on_delete = match fk.on_delete {
                Some(ReferentialAction::Cascade) => OnDelete::Cascade,
                Some(ReferentialAction::SetNull) => OnDelete::SetNull,
                Some(ReferentialAction::SetDefault) => {
                    return Err(SqlError::unsupported("ON DELETE SET DEFAULT"));
                }
                _ => OnDelete::Restrict,
            };
            let on_update = match fk.on_update {
                Some(ReferentialAction::Cascade) => OnDelete::Cascade,
                Some(ReferentialAction::SetNull) => OnDelete::SetNull,
                Some(ReferentialAction::SetDefault) => {
                    return Err(SqlError::unsupported("ON UPDATE SET DEFAULT"));
                }
                _ => OnDelete::Restrict,
            };
            let cols: Vec<&str> = columns
                .iter()
                .map(|&i| def.columns[i].name.as_str())
                .collect();
            let fname = fk
                .name
                .as_ref()
                .map(ident)
                .unwrap_or_else(|| format!("{name}_{}_fkey", cols.join("_")));
            taken(def, &fname)?;
            def.foreign_keys.push(ForeignKey {
                name: fname,
                columns,
                parent: parent_name,
                parent_columns,
                on_delete,
                on_update,
            });
        }
        other => return Err(SqlError::unsupported(format!("constraint {other}"))),
    }
    Ok(())
}

/// An index definition from `CREATE INDEX`.
pub fn index_from_ast(def: &TableDef, create: &ast::CreateIndex) -> Result<IndexDef, SqlError> {
    let columns = index_columns(def, &create.columns)?;
    let cols: Vec<&str> = columns
        .iter()
        .map(|&i| def.columns[i].name.as_str())
        .collect();
    Ok(IndexDef {
        name: create
            .name
            .as_ref()
            .map(object_name)
            .unwrap_or_else(|| format!("{}_{}_idx", def.name, cols.join("_"))),
        columns,
        unique: create.unique,
        primary: false,
        constraint: false,
    })
}
