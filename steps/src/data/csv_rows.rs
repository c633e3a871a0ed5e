//! CSV files: a header row, then rows, comma or semicolon separated (the
//! header decides), RFC 4180 quoting (`""` inside quotes is a quote; quoted
//! fields may hold delimiters and newlines), LF or CRLF line ends, UTF-8.
//!
//! Parsed here rather than with the `csv` crate because an error must name
//! its line: csv 1.4 numbered the rows of a CRLF file (this module's tests)
//! one line early.

use super::columns::{self, InputAt, Layout};
use super::source::Source;
use super::{ImportError, ImportSpec, Input, Row, RowIter};
use std::io::Read;

/// The rows of a CSV file.
pub(super) struct CsvRows<R> {
    records: Records<R>,
    layout: Layout,
}

impl<R: Read> CsvRows<R> {
    /// Reads the header and resolves the spec's columns against it.
    pub(super) fn new(mut source: Source<R>, spec: &ImportSpec) -> Result<Self, ImportError> {
        let mut line_buf = Vec::new();
        if !source.read_line(&mut line_buf)? {
            return Err(ImportError::EmptyFile);
        }
        // Spreadsheets save UTF-8 with a byte-order mark; it is not part of
        // the first column's name.
        if line_buf.starts_with(b"\xEF\xBB\xBF") {
            line_buf.drain(..3);
        }
        let mut records = Records {
            delimiter: delimiter(&line_buf),
            source,
            line_buf,
            primed: true,
            line: 0,
            bytes: Vec::new(),
            ends: Vec::new(),
        };
        records.next_record()?.ok_or(ImportError::EmptyFile)?;
        let names = (0..records.ends.len())
            .map(|i| {
                records
                    .field(i)
                    .map(|n| n.trim().to_owned())
                    .map_err(|()| ImportError::InvalidUtf8 {
                        line: 1,
                        column: format!("#{}", i + 1),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if names.iter().all(String::is_empty) {
            return Err(ImportError::EmptyFile);
        }
        Ok(Self {
            records,
            layout: Layout::resolve(names, spec)?,
        })
    }

    /// The current record, which starts on `line`, as a row.
    fn row(&self, line: u64) -> Result<Row, ImportError> {
        let expected = self.layout.names.len();
        let found = self.records.ends.len();
        if found != expected {
            return Err(ImportError::ColumnCount { line, expected, found });
        }
        let field = |i: usize| {
            let column = self.layout.names[i].as_str();
            self.records
                .field(i)
                .map(|value| (column, value))
                .map_err(|()| ImportError::InvalidUtf8 {
                    line,
                    column: column.to_owned(),
                })
        };
        let input = match &self.layout.input {
            InputAt::Tabular(at) => Input::Tabular(
                at.iter()
                    .map(|&i| field(i).and_then(|(column, value)| columns::feature(line, column, value)))
                    .collect::<Result<_, _>>()?,
            ),
            InputAt::Text(i) => {
                let (column, value) = field(*i)?;
                Input::Text(columns::text(line, column, value)?)
            }
        };
        let (column, value) = field(self.layout.label)?;
        let label = columns::label(line, column, value)?;
        Ok(Row { line, input, label })
    }
}

impl<R: Read> Iterator for CsvRows<R> {
    type Item = Result<Row, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.records.next_record() {
            Ok(Some(line)) => Some(self.row(line)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl<R: Read> RowIter for CsvRows<R> {
    fn feature_names(&self) -> &[String] {
        &self.layout.feature_names
    }
}

/// One record at a time, its unquoted fields packed into one reused buffer.
struct Records<R> {
    source: Source<R>,
    delimiter: u8,
    /// The current physical line.
    line_buf: Vec<u8>,
    /// `line_buf` holds a line not yet parsed (the header, read to find the
    /// delimiter).
    primed: bool,
    /// Physical lines read so far.
    line: u64,
    /// The current record's fields, end to end.
    bytes: Vec<u8>,
    /// Where each field ends in `bytes`.
    ends: Vec<usize>,
}

impl<R: Read> Records<R> {
    /// Field `i` of the current record; `Err` if it is not UTF-8.
    fn field(&self, i: usize) -> Result<&str, ()> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        std::str::from_utf8(&self.bytes[start..self.ends[i]]).map_err(|_| ())
    }

    /// Reads the next record, skipping blank lines; returns the line it
    /// starts on, or `None` at the end of the file.
    ///
    /// Errors: [`ImportError::Malformed`] for a quote never closed.
    fn next_record(&mut self) -> Result<Option<u64>, ImportError> {
        loop {
            if !self.next_line()? {
                return Ok(None);
            }
            if !matches!(self.line_buf.as_slice(), b"\n" | b"\r\n") {
                break;
            }
        }
        let start = self.line;
        self.bytes.clear();
        self.ends.clear();
        // Inside quotes; just read a quote that may close them or, doubled,
        // stand for itself; at a field's first byte.
        let (mut quoted, mut closing, mut field_start) = (false, false, true);
        loop {
            let buf = &self.line_buf;
            for (i, &b) in buf.iter().enumerate() {
                if quoted {
                    if b == b'"' {
                        (quoted, closing) = (false, true);
                    } else {
                        self.bytes.push(b);
                    }
                    continue;
                }
                match b {
                    b'"' if closing => {
                        self.bytes.push(b'"');
                        (quoted, closing) = (true, false);
                    }
                    b'"' if field_start => (quoted, field_start) = (true, false),
                    b if b == self.delimiter => {
                        self.ends.push(self.bytes.len());
                        (closing, field_start) = (false, true);
                    }
                    b'\n' => {}
                    b'\r' if i + 1 == buf.len() || buf[i + 1] == b'\n' => {}
                    b => {
                        self.bytes.push(b);
                        (closing, field_start) = (false, false);
                    }
                }
            }
            if !quoted {
                self.ends.push(self.bytes.len());
                return Ok(Some(start));
            }
            if !self.next_line()? {
                return Err(ImportError::Malformed {
                    line: start,
                    message: "a quoted field is never closed".to_owned(),
                });
            }
        }
    }

    /// Reads the next physical line into `line_buf`; false at the end.
    fn next_line(&mut self) -> Result<bool, ImportError> {
        if std::mem::take(&mut self.primed) {
            self.line += 1;
            return Ok(true);
        }
        let more = self.source.read_line(&mut self.line_buf)?;
        self.line += u64::from(more);
        Ok(more)
    }
}

/// The header's delimiter: a semicolon if the header has more semicolons
/// than commas outside quotes (spreadsheets in locales with a decimal comma
/// write those), else a comma.
fn delimiter(header: &[u8]) -> u8 {
    let (mut commas, mut semicolons, mut quoted) = (0, 0, false);
    for &b in header {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    if semicolons > commas { b';' } else { b',' }
}
