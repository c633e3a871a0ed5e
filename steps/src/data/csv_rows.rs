//! CSV files: a header row, then rows, comma or semicolon separated (the
//! header decides), RFC 4180 quoting, LF or CRLF line ends, UTF-8.

use super::columns::{InputAt, Layout};
use super::source::{Source, io_error};
use super::{ImportError, ImportSpec, Input, Row, RowIter, fields};
use std::io::{Chain, Cursor, Read};

/// The rows of a CSV file.
pub(super) struct CsvRows<R> {
    reader: csv::Reader<Chain<Cursor<Vec<u8>>, Source<R>>>,
    record: csv::ByteRecord,
    layout: Layout,
    limit: u64,
}

impl<R: Read> CsvRows<R> {
    /// Reads the header and resolves the spec's columns against it.
    pub(super) fn new(mut source: Source<R>, spec: &ImportSpec) -> Result<Self, ImportError> {
        let mut header = Vec::new();
        if !source.read_line(&mut header)? {
            return Err(ImportError::EmptyFile);
        }
        // Spreadsheets save UTF-8 with a byte-order mark; it is not part of
        // the first column's name.
        if header.starts_with(b"\xEF\xBB\xBF") {
            header.drain(..3);
        }
        let limit = source.limit();
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter(&header))
            .flexible(true)
            .from_reader(Cursor::new(header).chain(source));
        let names = reader
            .byte_headers()
            .map_err(|e| csv_error(e, limit))?
            .iter()
            .enumerate()
            .map(|(i, name)| {
                std::str::from_utf8(name)
                    .map(|n| n.trim().to_owned())
                    .map_err(|_| ImportError::InvalidUtf8 {
                        line: 1,
                        column: format!("#{}", i + 1),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if names.iter().all(String::is_empty) {
            return Err(ImportError::EmptyFile);
        }
        Ok(Self {
            reader,
            record: csv::ByteRecord::new(),
            layout: Layout::resolve(names, spec)?,
            limit,
        })
    }

    /// The current record as a row.
    fn row(&self) -> Result<Row, ImportError> {
        let line = self.record.position().map_or(0, csv::Position::line);
        let expected = self.layout.names.len();
        if self.record.len() != expected {
            return Err(ImportError::ColumnCount {
                line,
                expected,
                found: self.record.len(),
            });
        }
        let field = |i: usize| {
            let column = &self.layout.names[i];
            std::str::from_utf8(&self.record[i])
                .map(|value| (column.as_str(), value))
                .map_err(|_| ImportError::InvalidUtf8 {
                    line,
                    column: column.clone(),
                })
        };
        let input = match &self.layout.input {
            InputAt::Tabular(at) => Input::Tabular(
                at.iter()
                    .map(|&i| field(i).and_then(|(column, value)| fields::feature(line, column, value)))
                    .collect::<Result<_, _>>()?,
            ),
            InputAt::Text(i) => {
                let (column, value) = field(*i)?;
                Input::Text(fields::text(line, column, value)?)
            }
        };
        let (column, value) = field(self.layout.label)?;
        let label = fields::label(line, column, value)?;
        Ok(Row { line, input, label })
    }
}

impl<R: Read> Iterator for CsvRows<R> {
    type Item = Result<Row, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => Some(self.row()),
            Ok(false) => None,
            Err(e) => Some(Err(csv_error(e, self.limit))),
        }
    }
}

impl<R: Read> RowIter for CsvRows<R> {
    fn feature_names(&self) -> &[String] {
        &self.layout.feature_names
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

fn csv_error(e: csv::Error, limit: u64) -> ImportError {
    let line = e.position().map_or(0, csv::Position::line);
    match e.into_kind() {
        csv::ErrorKind::Io(e) => io_error(e, limit),
        other => ImportError::Malformed {
            line,
            message: format!("{other:?}"),
        },
    }
}
