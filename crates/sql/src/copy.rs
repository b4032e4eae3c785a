//! COPY: moving many rows in and out as one stream of text, instead of one statement per
//! row — how `pg_dump`, `pgbench -i`, psql's `\copy` and psycopg's `copy()` load and
//! unload tables.
//!
//! ```text
//! client: Query "COPY t FROM STDIN (FORMAT csv)"    server: CopyInResponse
//! client: CopyData "1,ann\n2,b"  CopyData "ob\n"  CopyDone
//! server: CommandComplete "COPY 2"
//!
//! client: Query "COPY t TO STDOUT"                  server: CopyOutResponse,
//!         CopyData "1\tann\n", CopyData "2\tbob\n", CopyDone, CommandComplete "COPY 2"
//! ```
//!
//! The data is a byte stream cut anywhere: a CopyData message may end in the middle of a
//! row (above, "b" + "ob"), so the [`Decoder`] keeps the unfinished row and where it had
//! scanned to, and only complete rows come out. Two formats:
//!
//! - **text** (the default): one row per line, fields separated by a tab, `\N` for NULL,
//!   and backslash escapes for the characters that would break the framing (`\t`, `\n`,
//!   `\\`, the delimiter), plus `\r`, `\b`, `\f`, `\v`, octal `\123` and hex `\x41`.
//! - **CSV**: fields separated by commas; a field is quoted with `"` when it holds the
//!   delimiter, a quote or a line break (which may then span lines), a quote inside is
//!   doubled; an *unquoted* empty field is NULL, a quoted empty one (`""`) the empty
//!   string. `HEADER` skips (on input) or writes (on output) a line of column names.
//!
//! A line `\.` alone ends the data in either format (what psql sends after a script's
//! inline data). Binary COPY is not implemented (0A000).

use sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};

use crate::error::SqlError;
use crate::types::{DataType, Value};

/// Longest row (line, or CSV record) accepted, in bytes: the bound on what one COPY may
/// hold in memory while waiting for the end of a row.
pub const MAX_ROW_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
}

/// The options of one COPY statement, with PostgreSQL's defaults per format.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    pub delimiter: char,
    /// The text that stands for NULL: `\N` in text format, the empty string in CSV.
    pub null: String,
    pub header: bool,
    pub quote: char,
    pub escape: char,
}

impl Options {
    /// Reads both the `WITH (FORMAT csv, HEADER)` form and the pre-9.0 `CSV HEADER` form
    /// (the one psql's `\copy ... csv header` sends).
    pub fn of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Options, SqlError> {
        let mut format = Format::Text;
        let (mut delimiter, mut null, mut header, mut quote, mut escape) =
            (None, None, false, None, None);
        for o in options {
            match o {
                CopyOption::Format(name) => {
                    format = match name.value.to_ascii_lowercase().as_str() {
                        "text" => Format::Text,
                        "csv" => Format::Csv,
                        "binary" => return Err(SqlError::unsupported("COPY in binary format")),
                        other => {
                            return Err(SqlError::new(
                                "22023",
                                format!("COPY format \"{other}\" not recognized"),
                            ));
                        }
                    }
                }
                CopyOption::Delimiter(c) => delimiter = Some(*c),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Header(h) => header = *h,
                CopyOption::Quote(c) => quote = Some(*c),
                CopyOption::Escape(c) => escape = Some(*c),
                // FREEZE (pgbench -i asks for it) only skips work PostgreSQL would do later.
                CopyOption::Freeze(_) | CopyOption::Encoding(_) => {}
                other => return Err(SqlError::unsupported(format!("COPY option {other}"))),
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Binary => {
                    return Err(SqlError::unsupported("COPY in binary format"));
                }
                CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Csv(csv) => {
                    format = Format::Csv;
                    for c in csv {
                        match c {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                            CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                            other => {
                                return Err(SqlError::unsupported(format!("COPY option {other}")));
                            }
                        }
                    }
                }
                other => return Err(SqlError::unsupported(format!("COPY option {other}"))),
            }
        }
        if format == Format::Text && (quote.is_some() || escape.is_some()) {
            return Err(SqlError::new(
                "0A000",
                "COPY QUOTE and ESCAPE are available only in CSV mode",
            ));
        }
        let quote = quote.unwrap_or('"');
        if !quote.is_ascii() || escape.is_some_and(|e| !e.is_ascii()) {
            return Err(SqlError::new(
                "0A000",
                "COPY quote and escape must be single one-byte characters",
            ));
        }
        let delimiter = delimiter.unwrap_or(match format {
            Format::Text => '\t',
            Format::Csv => ',',
        });
        if !delimiter.is_ascii() || matches!(delimiter, '\n' | '\r' | '\\') || delimiter == quote {
            return Err(SqlError::new(
                "22023",
                "COPY delimiter must be a single one-byte character other than newline, \
                 carriage return, backslash and the quote",
            ));
        }
        Ok(Options {
            format,
            delimiter,
            null: null.unwrap_or_else(|| match format {
                Format::Text => "\\N".into(),
                Format::Csv => String::new(),
            }),
            header,
            quote,
            escape: escape.unwrap_or(quote),
        })
    }

    /// The text of one value, as COPY writes it (`None` for NULL): the type's text form,
    /// the same as a query result's text format.
    pub fn encode_row(&self, row: &[Value], types: &[DataType]) -> Vec<u8> {
        let mut line = String::new();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                line.push(self.delimiter);
            }
            match text_form(v, types.get(i).copied().unwrap_or(DataType::Text)) {
                None => line.push_str(&self.null),
                Some(text) => self.push_field(&mut line, &text),
            }
        }
        line.push('\n');
        line.into_bytes()
    }

    /// A header line (CSV with HEADER) naming the columns.
    pub fn header_line(&self, names: &[&str]) -> Vec<u8> {
        let mut line = String::new();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                line.push(self.delimiter);
            }
            self.push_field(&mut line, name);
        }
        line.push('\n');
        line.into_bytes()
    }

    fn push_field(&self, line: &mut String, text: &str) {
        match self.format {
            Format::Text => {
                for c in text.chars() {
                    match c {
                        '\\' => line.push_str("\\\\"),
                        '\n' => line.push_str("\\n"),
                        '\r' => line.push_str("\\r"),
                        '\t' if self.delimiter == '\t' => line.push_str("\\t"),
                        c if c == self.delimiter => {
                            line.push('\\');
                            line.push(c);
                        }
                        c => line.push(c),
                    }
                }
            }
            Format::Csv => {
                let needs_quotes = text == self.null
                    || text == "\\."
                    || text
                        .chars()
                        .any(|c| c == self.delimiter || c == self.quote || c == '\n' || c == '\r');
                if !needs_quotes {
                    line.push_str(text);
                    return;
                }
                line.push(self.quote);
                for c in text.chars() {
                    if c == self.quote || c == self.escape {
                        line.push(self.escape);
                    }
                    line.push(c);
                }
                line.push(self.quote);
            }
        }
    }
}

/// A value's text form for `ty` (`None` for NULL): the cast to the column's type first,
/// so a NUMERIC(12,2) prints `100.00` and a boolean `t`.
pub fn text_form(v: &Value, ty: DataType) -> Option<String> {
    let v = v
        .clone()
        .cast(ty)
        .unwrap_or_else(|_| Value::Text(v.to_string()));
    (!v.is_null()).then(|| v.to_string())
}

/// `COPY table [(columns)] TO STDOUT` or `COPY (query) TO STDOUT`, as the query whose
/// rows it sends, with its options; `None` for any other statement.
pub fn copy_out(stmt: &Statement) -> Result<Option<(Statement, Options)>, SqlError> {
    let Statement::Copy {
        source,
        to: true,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return Ok(None);
    };
    if !matches!(target, CopyTarget::Stdout) {
        return Err(SqlError::new(
            "42501",
            "COPY to a file is not allowed: use COPY ... TO STDOUT (psql: \\copy)",
        ));
    }
    let options = Options::of(options, legacy_options)?;
    let query = match source {
        CopySource::Query(q) => Statement::Query(q.clone()),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let list = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let text = format!("SELECT {list} FROM {table_name}");
            crate::parse::statements(&text)
                .ok()
                .and_then(|mut v| v.pop())
                .ok_or_else(|| SqlError::syntax(format!("COPY of {table_name}"), None))?
        }
    };
    Ok(Some((query, options)))
}

/// Cuts a COPY FROM byte stream into rows of text fields (`None` for NULL), whatever
/// the chunking.
#[derive(Debug)]
pub struct Decoder {
    options: Options,
    /// Bytes of rows not yet complete.
    pending: Vec<u8>,
    /// How far `pending` has been scanned for the end of its first row, and whether the
    /// scan is inside a CSV quoted field there (and just after its ESCAPE character):
    /// each byte is looked at once, however the row is cut into messages.
    scanned: usize,
    in_quotes: bool,
    after_escape: bool,
    /// The header line (CSV HEADER) is still to be skipped.
    skip_header: bool,
    /// `\.` was seen: the rest of the stream is ignored.
    ended: bool,
    /// Rows decoded so far (for error messages: "line N").
    pub line: u64,
}

impl Decoder {
    pub fn new(options: Options) -> Decoder {
        Decoder {
            skip_header: options.header,
            options,
            pending: Vec::new(),
            scanned: 0,
            in_quotes: false,
            after_escape: false,
            ended: false,
            line: 0,
        }
    }

    /// Adds a chunk of data; returns the rows it completed.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Vec<Option<String>>>, SqlError> {
        if self.ended {
            return Ok(Vec::new());
        }
        self.pending.extend_from_slice(data);
        let mut rows = Vec::new();
        let mut start = 0;
        let csv = self.options.format == Format::Csv;
        let (quote, escape) = (self.options.quote as u8, self.options.escape as u8);
        while self.scanned < self.pending.len() {
            let b = self.pending[self.scanned];
            self.scanned += 1;
            if !csv {
                // Text format: a line is a row (a newline in data is written `\n`).
            } else if self.after_escape {
                self.after_escape = false;
                continue;
            } else if self.in_quotes && b == escape && escape != quote {
                self.after_escape = true;
                continue;
            } else if b == quote {
                // A doubled quote inside quotes toggles twice: still inside.
                self.in_quotes = !self.in_quotes;
                continue;
            }
            if b == b'\n' && !self.in_quotes {
                let end = self.scanned - 1;
                let row = self.row(start, end)?;
                start = self.scanned;
                if let Some(row) = row {
                    rows.push(row);
                }
                if self.ended {
                    break;
                }
            }
        }
        self.pending.drain(..start);
        self.scanned -= start.min(self.scanned);
        if self.ended {
            self.pending.clear();
            self.scanned = 0;
        }
        if self.pending.len() > MAX_ROW_BYTES {
            return Err(SqlError::new(
                "54000",
                format!(
                    "COPY row {} is longer than {MAX_ROW_BYTES} bytes",
                    self.line + 1
                ),
            ));
        }
        Ok(rows)
    }

    /// The end of the data: a last row without its newline.
    pub fn finish(&mut self) -> Result<Vec<Vec<Option<String>>>, SqlError> {
        if self.ended || self.pending.is_empty() {
            return Ok(Vec::new());
        }
        if self.in_quotes {
            return Err(SqlError::new(
                "22P04",
                format!("unterminated CSV quoted field (line {})", self.line + 1),
            ));
        }
        let end = self.pending.len();
        let row = self.row(0, end)?;
        self.pending.clear();
        self.scanned = 0;
        Ok(row.into_iter().collect())
    }

    /// Decodes `pending[start..end]` (one line, without its `\n`).
    fn row(&mut self, start: usize, end: usize) -> Result<Option<Vec<Option<String>>>, SqlError> {
        let mut bytes = &self.pending[start..end];
        if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        if bytes == b"\\." {
            self.ended = true;
            return Ok(None);
        }
        self.line += 1;
        if self.skip_header {
            self.skip_header = false;
            return Ok(None);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| {
            SqlError::new(
                "22021",
                format!(
                    "invalid byte sequence for encoding \"UTF8\" (COPY line {})",
                    self.line
                ),
            )
        })?;
        Ok(Some(match self.options.format {
            Format::Text => text_fields(text, &self.options),
            Format::Csv => csv_fields(text, &self.options),
        }))
    }
}

/// One text-format line's fields: split at unescaped delimiters, `\N` (the null string,
/// compared before decoding) is NULL, escapes decoded.
///
/// The fields are cut as slices of the line and each is copied once, into its value:
/// a bulk load decodes millions of fields, and building each a character at a time
/// cost more than the rest of its way into the table. Cutting at bytes is safe: the
/// delimiter and the backslash are ASCII, and no byte of a multi-byte UTF-8 character
/// is.
fn text_fields(line: &str, o: &Options) -> Vec<Option<String>> {
    let delimiter = o.delimiter as u8;
    let field = |raw: &str| (raw != o.null).then(|| unescape(raw));
    let mut fields = Vec::with_capacity(8);
    let bytes = line.as_bytes();
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 1, // the next character is escaped, whatever it is
            b if b == delimiter => {
                fields.push(field(&line[start..at]));
                start = at + 1;
            }
            _ => {}
        }
        at += 1;
    }
    fields.push(field(line.get(start..).unwrap_or("")));
    fields
}

/// Text format's backslash escapes.
fn unescape(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('v') => out.push('\u{b}'),
            Some(d @ '0'..='7') => {
                let mut n = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(x) => {
                            n = n * 8 + x;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.extend(char::from_u32(n));
            }
            Some('x') => {
                let mut n = None;
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(16)) {
                        Some(x) => {
                            n = Some(n.unwrap_or(0) * 16 + x);
                            chars.next();
                        }
                        None => break,
                    }
                }
                match n {
                    Some(n) => out.extend(char::from_u32(n)),
                    None => out.push('x'),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// One CSV record's fields (the record may contain line breaks inside quotes).
fn csv_fields(record: &str, o: &Options) -> Vec<Option<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false; // this field had quotes: never NULL
    let mut inside = false;
    let mut chars = record.chars().peekable();
    while let Some(c) = chars.next() {
        if inside {
            if c == o.escape && chars.peek().is_some_and(|&n| n == o.quote || n == o.escape) {
                // `""` (or the ESCAPE character, then a quote or itself): taken literally.
                field.extend(chars.next());
            } else if c == o.quote {
                inside = false;
            } else {
                field.push(c);
            }
        } else if c == o.quote {
            inside = true;
            quoted = true;
        } else if c == o.delimiter {
            fields.push((quoted || field != o.null).then(|| std::mem::take(&mut field)));
            field.clear();
            quoted = false;
        } else {
            field.push(c);
        }
    }
    fields.push((quoted || field != o.null).then_some(field));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(format: Format, header: bool) -> Options {
        let mut legacy = Vec::new();
        if format == Format::Csv {
            legacy.push(CopyLegacyOption::Csv(if header {
                vec![CopyLegacyCsvOption::Header]
            } else {
                Vec::new()
            }));
        }
        Options::of(&[], &legacy).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    /// Feeds `data` cut at every possible point into two chunks: the rows never depend on
    /// the chunking.
    fn decode_every_split(o: &Options, data: &[u8]) -> Vec<Vec<Option<String>>> {
        let mut whole = Decoder::new(o.clone());
        let mut expected = whole.feed(data).unwrap_or_else(|e| panic!("{e:?}"));
        expected.extend(whole.finish().unwrap_or_else(|e| panic!("{e:?}")));
        for cut in 0..=data.len() {
            let mut d = Decoder::new(o.clone());
            let mut rows = d.feed(&data[..cut]).unwrap_or_else(|e| panic!("{e:?}"));
            rows.extend(d.feed(&data[cut..]).unwrap_or_else(|e| panic!("{e:?}")));
            rows.extend(d.finish().unwrap_or_else(|e| panic!("{e:?}")));
            assert_eq!(rows, expected, "cut at {cut}");
        }
        expected
    }

    #[test]
    fn text_format_fields_nulls_and_escapes() {
        let o = options(Format::Text, false);
        let rows = decode_every_split(
            &o,
            b"1\tann\t\\N\n2\ta\\tb\\\\c\\nd\t\\101\\x42\r\n3\t\t\\\tx\n\\.\nignored\n",
        );
        assert_eq!(
            rows,
            vec![
                vec![s("1"), s("ann"), None],
                vec![s("2"), s("a\tb\\c\nd"), s("AB")],
                vec![s("3"), s(""), s("\tx")],
            ]
        );
    }

    #[test]
    fn csv_quotes_nulls_header_and_line_breaks_inside_quotes() {
        let o = options(Format::Csv, true);
        let rows = decode_every_split(
            &o,
            b"id,name,note\n1,\"ann, the \"\"first\"\"\",\n2,\"\",\"two\nlines\"\n3,bob,x",
        );
        assert_eq!(
            rows,
            vec![
                vec![s("1"), s("ann, the \"first\""), None],
                vec![s("2"), s(""), s("two\nlines")],
                vec![s("3"), s("bob"), s("x")],
            ]
        );
        let mut d = Decoder::new(o);
        assert!(d.feed(b"h\n1,\"open").is_ok());
        assert_eq!(d.finish().map_err(|e| e.code).err(), Some("22P04"));
    }

    #[test]
    fn encoding_round_trips_through_the_decoder() {
        let values = vec![
            Value::Int(7),
            Value::Text("a\tb,\"c\"\nd\\e".into()),
            Value::Null,
            Value::Text(String::new()),
            Value::Bool(true),
        ];
        let types = [
            DataType::Int,
            DataType::Text,
            DataType::Text,
            DataType::Text,
            DataType::Bool,
        ];
        for format in [Format::Text, Format::Csv] {
            let o = options(format, false);
            let line = o.encode_row(&values, &types);
            let mut d = Decoder::new(o);
            let rows = d.feed(&line).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(
                rows,
                vec![vec![s("7"), s("a\tb,\"c\"\nd\\e"), None, s(""), s("t")]],
                "{format:?}: {}",
                String::from_utf8_lossy(&line)
            );
        }
    }

    #[test]
    fn a_row_without_end_is_bounded() {
        let mut d = Decoder::new(options(Format::Text, false));
        let chunk = vec![b'x'; 1024 * 1024];
        let mut result = Ok(Vec::new());
        for _ in 0..=(MAX_ROW_BYTES / chunk.len()) {
            result = d.feed(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.map_err(|e| e.code).err(), Some("54000"));
    }

    #[test]
    fn binary_and_bad_options_are_refused() {
        let binary = Options::of(
            &[CopyOption::Format(sqlparser::ast::Ident::new("binary"))],
            &[],
        );
        assert_eq!(binary.map_err(|e| e.code).err(), Some("0A000"));
        let quote_in_text = Options::of(&[CopyOption::Quote('\'')], &[]);
        assert_eq!(quote_in_text.map_err(|e| e.code).err(), Some("0A000"));
    }
}
