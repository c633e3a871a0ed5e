//! JSON lines: one object per line, keyed by column name. The first object's
//! keys, in the order written, play the header's part: they fix the column
//! count and, when no features are chosen, the feature order.

use super::columns::{self, InputAt, Layout};
use super::source::Source;
use super::{ImportError, ImportSpec, Input, Row, RowIter};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::io::Read;

/// The rows of a JSON-lines file.
pub(super) struct JsonRows<R> {
    objects: Objects<R>,
    layout: Layout,
    /// The first object, read to learn the columns and not yet returned.
    first: Option<(u64, Object)>,
}

impl<R: Read> JsonRows<R> {
    /// Reads the first object and resolves the spec's columns against its keys.
    pub(super) fn new(source: Source<R>, spec: &ImportSpec) -> Result<Self, ImportError> {
        let mut objects = Objects {
            source,
            buf: Vec::new(),
            line: 0,
        };
        let (line, first) = objects.next_object()?.ok_or(ImportError::EmptyFile)?;
        let names = first.0.iter().map(|(k, _)| k.clone()).collect();
        Ok(Self {
            objects,
            layout: Layout::resolve(names, spec)?,
            first: Some((line, first)),
        })
    }
}

impl<R: Read> Objects<R> {
    /// The next non-blank line's object, with its line number.
    fn next_object(&mut self) -> Result<Option<(u64, Object)>, ImportError> {
        loop {
            if !self.source.read_line(&mut self.buf)? {
                return Ok(None);
            }
            self.line += 1;
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.line;
            if let Err(e) = std::str::from_utf8(&self.buf) {
                return Err(ImportError::InvalidUtf8 {
                    line,
                    column: key_before(&self.buf[..e.valid_up_to()]),
                });
            }
            return serde_json::from_slice(&self.buf)
                .map(|object| Some((line, object)))
                .map_err(|e| ImportError::Malformed {
                    line,
                    message: format!("not a JSON object: {e}"),
                });
        }
    }
}

impl<R: Read> JsonRows<R> {
    /// An object as a row.
    fn row(&self, line: u64, object: Object) -> Result<Row, ImportError> {
        let expected = self.layout.names.len();
        if object.0.len() != expected {
            return Err(ImportError::ColumnCount {
                line,
                expected,
                found: object.0.len(),
            });
        }
        let field = |i: usize| {
            let column = self.layout.names[i].as_str();
            object
                .0
                .iter()
                .find(|(k, _)| k == column)
                .map(|(_, v)| (column, v))
                .ok_or_else(|| ImportError::MissingColumn {
                    line,
                    column: column.to_owned(),
                })
        };
        let input = match &self.layout.input {
            InputAt::Tabular(at) => Input::Tabular(
                at.iter()
                    .map(|&i| field(i).and_then(|(column, value)| feature(line, column, value)))
                    .collect::<Result<_, _>>()?,
            ),
            InputAt::Text(i) => match field(*i)? {
                (column, Value::String(s)) => Input::Text(columns::text(line, column, s)?),
                (column, Value::Null) => {
                    return Err(ImportError::EmptyText {
                        line,
                        column: column.to_owned(),
                    });
                }
                (column, _) => {
                    return Err(ImportError::Malformed {
                        line,
                        message: format!("column {column}: text must be a JSON string"),
                    });
                }
            },
        };
        let (column, value) = field(self.layout.label)?;
        Ok(Row {
            line,
            input,
            label: label(line, column, value)?,
        })
    }
}

impl<R: Read> Iterator for JsonRows<R> {
    type Item = Result<Row, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = match self.first.take() {
            Some(first) => Some(first),
            None => match self.objects.next_object() {
                Ok(next) => next,
                Err(e) => return Some(Err(e)),
            },
        };
        next.map(|(line, object)| self.row(line, object))
    }
}

impl<R: Read> RowIter for JsonRows<R> {
    fn feature_names(&self) -> &[String] {
        &self.layout.feature_names
    }
}

/// The file's non-blank lines, parsed one at a time into one reused buffer.
struct Objects<R> {
    source: Source<R>,
    buf: Vec<u8>,
    line: u64,
}

/// A feature: a JSON number, or a string holding one.
fn feature(line: u64, column: &str, value: &Value) -> Result<f64, ImportError> {
    match value {
        // serde_json refuses NaN and infinities, so a number is finite.
        Value::Number(n) => n.as_f64().ok_or_else(|| ImportError::NonNumeric {
            line,
            column: column.to_owned(),
            value: n.to_string(),
        }),
        Value::String(s) => columns::feature(line, column, s),
        other => Err(ImportError::NonNumeric {
            line,
            column: column.to_owned(),
            value: other.to_string(),
        }),
    }
}

/// A label: a string, or an integer meaning its decimal string (so today's
/// clients sending `5` keep working).
fn label(line: u64, column: &str, value: &Value) -> Result<String, ImportError> {
    match value {
        Value::String(s) => columns::label(line, column, s),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Value::Null => Err(ImportError::MissingLabel {
            line,
            column: column.to_owned(),
        }),
        other => Err(ImportError::InvalidLabel {
            line,
            column: column.to_owned(),
            value: other.to_string(),
        }),
    }
}

/// The last key written before `prefix` ends: where invalid UTF-8 starts,
/// to name its column.
fn key_before(prefix: &[u8]) -> String {
    let text = String::from_utf8_lossy(prefix);
    text.rfind("\":")
        .and_then(|end| text[..end].rfind('"').map(|start| text[start + 1..end].to_owned()))
        .unwrap_or_else(|| "?".to_owned())
}

/// A JSON object with its keys in the order written (serde_json's `Map`
/// sorts them unless a feature elsewhere in the build says otherwise).
struct Object(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Object(entries))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}
