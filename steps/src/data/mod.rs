//! Importing a model's data from a user's file (issue 11: `retrain models
//! create|import` and `POST /models/{name}/datasets` will call this).
//!
//! The flow: [`read_rows`] turns a CSV or JSON-lines stream into typed
//! [`Row`]s one at a time (memory flat in the file size), each checked
//! against the model's input kind; [`Splitter`] sends each row to
//! [`Part::Base`] or [`Part::Golden`] by the hash of its normalized input
//! ([`input_hash`]) and, at the end, checks that every class can be trained
//! and validated. Any failure is an [`ImportError`] naming the line and
//! column; the caller imports in one transaction, so nothing is
//! half-imported.

mod columns;
mod csv_rows;
mod error;
mod jsonl_rows;
mod normalize;
mod source;
mod split;

pub use crate::ml::Input;
pub use error::ImportError;
pub use normalize::{InputHash, input_hash, normalize_text};
pub use split::{ClassCount, Golden, GoldenShare, Part, SplitSummary, Splitter};

use std::io::Read;

/// The largest file imported unless the settings say otherwise: 1 GiB, ten
/// times a 1M-row, 12-column CSV.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// The label column's name unless the settings say otherwise.
pub const DEFAULT_LABEL_COLUMN: &str = "label";

/// The text column's name unless the settings say otherwise.
pub const DEFAULT_TEXT_COLUMN: &str = "text";

/// How the file is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A header row, then one row per line; comma or semicolon, detected
    /// from the header; fields may be quoted with `""` as an escaped quote.
    Csv,
    /// One JSON object per line; blank lines are skipped.
    JsonLines,
}

/// Which columns make a row's input, by the model's input kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputColumns {
    /// Named numeric columns: these, in this order, or (`None`) every column
    /// but the label, in file order.
    Tabular {
        /// The feature columns, if chosen.
        features: Option<Vec<String>>,
    },
    /// One text column.
    Text {
        /// The text column's name.
        column: String,
    },
}

/// What to read from a file: its format, the label column, the input columns
/// and the size limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSpec {
    /// The file's encoding.
    pub format: Format,
    /// The label column's name.
    pub label: String,
    /// The input columns.
    pub input: InputColumns,
    /// Files longer than this many bytes are refused.
    pub max_bytes: u64,
}

impl ImportSpec {
    /// A spec with the default label column and size limit.
    pub fn new(format: Format, input: InputColumns) -> Self {
        Self {
            format,
            label: DEFAULT_LABEL_COLUMN.to_owned(),
            input,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// One imported row: its input and its class name.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    /// The row's input.
    pub input: Input,
    /// The class name (a JSON integer label becomes its decimal string).
    pub label: String,
}

/// Reads `reader` as `spec` says, one row at a time.
///
/// The header (CSV) or first object (JSON lines) is read now, so a missing
/// or unknown column fails here with [`ImportError::UnknownColumn`],
/// [`ImportError::DuplicateColumn`], [`ImportError::NoFeatures`] or
/// [`ImportError::EmptyFile`]. Each row's own faults come from the
/// iterator; stop at the first error.
pub fn read_rows<'a, R: Read + Send + 'a>(reader: R, spec: &ImportSpec) -> Result<Rows<'a>, ImportError> {
    let source = source::Source::new(reader, spec.max_bytes);
    let inner: Box<dyn RowIter + Send + 'a> = match spec.format {
        Format::Csv => Box::new(csv_rows::CsvRows::new(source, spec)?),
        Format::JsonLines => Box::new(jsonl_rows::JsonRows::new(source, spec)?),
    };
    Ok(Rows { inner })
}

/// The rows of one file, in file order; see [`read_rows`]. `Send`, so an
/// upload can be read on a blocking thread.
pub struct Rows<'a> {
    inner: Box<dyn RowIter + Send + 'a>,
}

impl Rows<'_> {
    /// The feature columns of a tabular file, in the order of each row's
    /// values (empty for text): the names the model registers.
    pub fn feature_names(&self) -> &[String] {
        self.inner.feature_names()
    }
}

impl std::fmt::Debug for Rows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("feature_names", &self.feature_names())
            .finish_non_exhaustive()
    }
}

impl Iterator for Rows<'_> {
    type Item = Result<Row, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// What the CSV and JSON-lines readers share behind [`Rows`].
trait RowIter: Iterator<Item = Result<Row, ImportError>> {
    fn feature_names(&self) -> &[String];
}
#[cfg(test)]
mod tests;
