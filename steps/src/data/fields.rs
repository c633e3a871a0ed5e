//! Checking one field's text as a feature, a text or a label: the rules both
//! readers share, so a CSV file and a JSON-lines file with the same values
//! give the same rows and the same errors.

use super::ImportError;

/// A feature value: a finite number, surrounding spaces allowed.
///
/// Errors: [`ImportError::NonNumeric`] (including an empty field) and
/// [`ImportError::NonFinite`] for NaN and infinities.
pub(super) fn feature(line: u64, column: &str, value: &str) -> Result<f64, ImportError> {
    let x: f64 = value.trim().parse().map_err(|_| ImportError::NonNumeric {
        line,
        column: column.to_owned(),
        value: value.to_owned(),
    })?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(ImportError::NonFinite {
            line,
            column: column.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// A text: kept as written, but refused when only whitespace
/// ([`ImportError::EmptyText`]).
pub(super) fn text(line: u64, column: &str, value: &str) -> Result<String, ImportError> {
    if value.trim().is_empty() {
        Err(ImportError::EmptyText {
            line,
            column: column.to_owned(),
        })
    } else {
        Ok(value.to_owned())
    }
}

/// A class name: trimmed, and refused when empty ([`ImportError::MissingLabel`]).
pub(super) fn label(line: u64, column: &str, value: &str) -> Result<String, ImportError> {
    let value = value.trim();
    if value.is_empty() {
        Err(ImportError::MissingLabel {
            line,
            column: column.to_owned(),
        })
    } else {
        Ok(value.to_owned())
    }
}
