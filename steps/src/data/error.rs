//! Why a user's data file cannot be imported. One enum for every reader and
//! the split, so the import command and `POST /models/{name}/datasets`
//! (issue 11) turn any failure into one message naming the line and column.

use thiserror::Error;

/// Why a data file was refused. Lines count from 1 and include the header;
/// `column` is the column's name as the file spells it.
///
/// Every variant except [`ImportError::Io`] is fatal for the file: importing
/// the same bytes again gives the same error. Callers import inside one
/// transaction and roll back on any error, so nothing is half-imported.
#[derive(Debug, Error)]
pub enum ImportError {
    /// Reading the input failed (a broken connection or disk); retrying the
    /// upload may succeed.
    #[error("reading the data failed: {0}")]
    Io(#[from] std::io::Error),
    /// The file is longer than the size limit setting.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The file has no header row (CSV) or no object (JSON lines).
    #[error("the file is empty")]
    EmptyFile,
    /// The file has a header but no data row.
    #[error("the file has no data rows")]
    NoRows,
    /// A field is not valid UTF-8.
    #[error("line {line}, column {column}: not valid UTF-8")]
    InvalidUtf8 {
        /// Line of the row.
        line: u64,
        /// Column name (or position, in the header row itself).
        column: String,
    },
    /// A line does not parse: a JSON line that is not one JSON object, or
    /// CSV that the parser refuses.
    #[error("line {line}: {message}")]
    Malformed {
        /// Line of the row.
        line: u64,
        /// What the parser said.
        message: String,
    },
    /// A column named in the settings is not in the header.
    #[error("line 1: no column named {column:?} (the columns are {available:?})")]
    UnknownColumn {
        /// The name asked for.
        column: String,
        /// The header's names, in file order.
        available: Vec<String>,
    },
    /// Two header cells carry the same name, so a name would be ambiguous.
    #[error("line 1: column {column:?} appears twice")]
    DuplicateColumn {
        /// The repeated name.
        column: String,
    },
    /// A tabular file has no feature column besides the label.
    #[error("line 1: no feature columns besides the label")]
    NoFeatures,
    /// A row has more or fewer fields than the header.
    #[error("line {line}: {found} columns, the header has {expected}")]
    ColumnCount {
        /// Line of the row.
        line: u64,
        /// Columns in the header.
        expected: usize,
        /// Columns in the row.
        found: usize,
    },
    /// A JSON object lacks a column the model needs.
    #[error("line {line}, column {column}: missing")]
    MissingColumn {
        /// Line of the object.
        line: u64,
        /// The missing column.
        column: String,
    },
    /// The label is empty, null or absent.
    #[error("line {line}, column {column}: missing label")]
    MissingLabel {
        /// Line of the row.
        line: u64,
        /// The label column.
        column: String,
    },
    /// A JSON label is neither a string nor an integer.
    #[error("line {line}, column {column}: label {value} is not a string or an integer")]
    InvalidLabel {
        /// Line of the row.
        line: u64,
        /// The label column.
        column: String,
        /// The value as found.
        value: String,
    },
    /// A feature is not a number.
    #[error("line {line}, column {column}: {value:?} is not a number")]
    NonNumeric {
        /// Line of the row.
        line: u64,
        /// The feature column.
        column: String,
        /// The value as found.
        value: String,
    },
    /// A feature is NaN or an infinity.
    #[error("line {line}, column {column}: {value:?} is not a finite number")]
    NonFinite {
        /// Line of the row.
        line: u64,
        /// The feature column.
        column: String,
        /// The value as found.
        value: String,
    },
    /// A text field is empty or only whitespace.
    #[error("line {line}, column {column}: empty text")]
    EmptyText {
        /// Line of the row.
        line: u64,
        /// The text column.
        column: String,
    },
    /// The golden share is not strictly between 0 and 1.
    #[error("golden share {share} is not between 0 and 1 (exclusive)")]
    InvalidShare {
        /// The share asked for.
        share: f64,
    },
    /// A class of the model has no training (base) rows.
    #[error("class {class:?} has no rows to train on")]
    EmptyClass {
        /// The class name.
        class: String,
    },
    /// The golden share put none of a class's rows in the golden set, so the
    /// gate could never check that class.
    #[error(
        "class {class:?} has {rows} rows but none in the golden set; \
         add rows of that class or raise the golden share (now {share})"
    )]
    NoGoldenRows {
        /// The class name.
        class: String,
        /// The class's rows in the file.
        rows: u64,
        /// The golden share in force.
        share: f64,
    },
    /// An explicit golden file has no rows of a class that the base data has.
    #[error("the golden file has no rows of class {class:?}")]
    NoGoldenRowsInFile {
        /// The class name.
        class: String,
    },
    /// Every row has the same class: there is nothing to classify.
    #[error("every row is of class {class:?}; a classifier needs at least two classes")]
    OneClass {
        /// The only class.
        class: String,
    },
    /// The file's feature columns are not the model's.
    #[error("the file's feature columns {found:?} are not the model's {expected:?}")]
    OtherColumns {
        /// The model's columns, in order.
        expected: Vec<String>,
        /// The file's.
        found: Vec<String>,
    },
}
