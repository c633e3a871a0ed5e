//! Which positions of a header hold the label and the input (the header's
//! names resolved once against the spec, so each row is read by position),
//! and the rules for a field's text as a feature, a text or a label, shared
//! by both readers so a CSV file and a JSON-lines file with the same values
//! give the same rows and the same errors.

use super::{ImportError, ImportSpec, InputColumns};

/// The resolved columns of one file.
#[derive(Debug)]
pub(super) struct Layout {
    /// The header's names, in file order.
    pub(super) names: Vec<String>,
    /// Position of the label.
    pub(super) label: usize,
    /// Positions of the input.
    pub(super) input: InputAt,
    /// The feature columns' names, in the order of a row's values (empty
    /// for text).
    pub(super) feature_names: Vec<String>,
}

/// Where a row's input is.
#[derive(Debug)]
pub(super) enum InputAt {
    /// Feature positions, in the model's column order.
    Tabular(Vec<usize>),
    /// The text's position.
    Text(usize),
}

impl Layout {
    /// Resolves `spec` against a header.
    ///
    /// Errors: [`ImportError::DuplicateColumn`], [`ImportError::UnknownColumn`]
    /// for the label or a chosen column, [`ImportError::NoFeatures`].
    pub(super) fn resolve(names: Vec<String>, spec: &ImportSpec) -> Result<Self, ImportError> {
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(ImportError::DuplicateColumn { column: name.clone() });
            }
        }
        let position = |column: &str| {
            names
                .iter()
                .position(|n| n == column)
                .ok_or_else(|| ImportError::UnknownColumn {
                    column: column.to_owned(),
                    available: names.clone(),
                })
        };
        let label = position(&spec.label)?;
        let input = match &spec.input {
            InputColumns::Text { column } => InputAt::Text(position(column)?),
            InputColumns::Tabular { features: Some(chosen) } => {
                InputAt::Tabular(chosen.iter().map(|c| position(c)).collect::<Result<_, _>>()?)
            }
            InputColumns::Tabular { features: None } => {
                InputAt::Tabular((0..names.len()).filter(|&i| i != label).collect())
            }
        };
        let feature_names = match &input {
            InputAt::Tabular(at) if at.is_empty() => return Err(ImportError::NoFeatures),
            InputAt::Tabular(at) => at.iter().map(|&i| names[i].clone()).collect(),
            InputAt::Text(_) => Vec::new(),
        };
        Ok(Self {
            names,
            label,
            input,
            feature_names,
        })
    }
}

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
