//! One labelled row, the unit every data source (the wine set, feedback,
//! uploaded files) is turned into before training or evaluation, and the
//! input a model reads: numeric features or a text.

use serde::{Deserialize, Serialize};

/// What a model reads: a tabular model named numeric columns, a text model
/// one text field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "input_kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InputKind {
    /// Named numeric columns, in the model's order.
    Tabular,
    /// One text field.
    Text,
}

impl InputKind {
    /// The stable snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Tabular => "tabular",
            InputKind::Text => "text",
        }
    }
}

impl std::fmt::Display for InputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model's input, as a row of a file or a request gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Finite feature values, in the model's column order.
    Tabular(Vec<f64>),
    /// Non-empty text, as written.
    Text(String),
}

impl Input {
    /// Which kind of model can read this input.
    pub fn kind(&self) -> InputKind {
        match self {
            Input::Tabular(_) => InputKind::Tabular,
            Input::Text(_) => InputKind::Text,
        }
    }

    /// The features of a tabular input.
    pub fn features(&self) -> Option<&[f64]> {
        match self {
            Input::Tabular(features) => Some(features),
            Input::Text(_) => None,
        }
    }

    /// The text of a text input.
    pub fn text(&self) -> Option<&str> {
        match self {
            Input::Tabular(_) => None,
            Input::Text(text) => Some(text),
        }
    }
}

/// An input with its class name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// What the model reads.
    pub input: Input,
    /// The class name, e.g. the wine quality score `"5"`.
    pub label: String,
}

impl Example {
    /// A tabular example.
    pub fn tabular(features: Vec<f64>, label: impl Into<String>) -> Self {
        Self {
            input: Input::Tabular(features),
            label: label.into(),
        }
    }

    /// A text example.
    pub fn text(text: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            input: Input::Text(text.into()),
            label: label.into(),
        }
    }
}
