//! The compact form every learner fits from: a training set's inputs as one
//! row-major `f64` matrix (or its texts) and each row's class as a 4-byte
//! index into the sorted class names. A wine row costs 92 bytes here
//! instead of about 184 as an [`Example`] (its own feature allocation and
//! label `String`), which is what lets ten million rows train in 1.5 GiB.
//!
//! A learner reads a [`Rows`] view: the whole table, or a subset given as
//! a list of row indices, so cross-validation folds and bootstrap samples
//! are index lists, never copies of the rows.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{Example, Input, InputKind, ModelError};

/// A model's input, borrowed from a table row or an [`Input`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputRef<'a> {
    Tabular(&'a [f64]),
    Text(&'a str),
}

impl InputRef<'_> {
    /// Which kind of model can read this input.
    pub fn kind(self) -> InputKind {
        match self {
            InputRef::Tabular(_) => InputKind::Tabular,
            InputRef::Text(_) => InputKind::Text,
        }
    }
}

impl<'a> From<&'a Input> for InputRef<'a> {
    fn from(input: &'a Input) -> Self {
        match input {
            Input::Tabular(features) => InputRef::Tabular(features),
            Input::Text(text) => InputRef::Text(text),
        }
    }
}

/// The inputs of a table, one per row.
#[derive(Clone, Debug, PartialEq)]
enum Inputs {
    /// `width` features per row, row after row.
    Tabular {
        width: usize,
        values: Vec<f64>,
    },
    Text(Vec<String>),
}

/// Labelled rows, validated: every input of one kind, tabular rows of one
/// non-zero width and finite values.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The class names that occur, ascending.
    classes: Vec<String>,
    /// Each row's index into `classes`.
    targets: Vec<u32>,
    inputs: Inputs,
}

/// A table being filled row by row (the train step fills one from the
/// rows it reads back, never holding them as examples).
#[derive(Debug)]
pub struct TableBuilder {
    /// Class names in the order first seen, and their indices.
    names: Vec<String>,
    index: HashMap<String, u32>,
    targets: Vec<u32>,
    inputs: Option<Inputs>,
    capacity: usize,
}

impl TableBuilder {
    /// Room for `rows` rows up front, so the matrix is allocated once
    /// rather than doubled (a doubling holds both copies at once).
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            names: Vec::new(),
            index: HashMap::new(),
            targets: Vec::with_capacity(rows),
            inputs: None,
            capacity: rows,
        }
    }

    /// Adds the next row.
    ///
    /// Errors: [`ModelError::WrongInput`] for an input of another kind than
    /// the first row's, [`ModelError::NoFeatures`],
    /// [`ModelError::InconsistentFeatures`], [`ModelError::NonFiniteExample`].
    pub fn push(&mut self, example: &Example) -> Result<(), ModelError> {
        let row = self.targets.len();
        let inputs = self.inputs.get_or_insert_with(|| match &example.input {
            Input::Tabular(features) => Inputs::Tabular {
                width: features.len(),
                values: Vec::with_capacity(self.capacity * features.len()),
            },
            Input::Text(_) => Inputs::Text(Vec::with_capacity(self.capacity)),
        });
        match (inputs, &example.input) {
            (Inputs::Tabular { width, values }, Input::Tabular(features)) => {
                if *width == 0 {
                    return Err(ModelError::NoFeatures);
                }
                if features.len() != *width {
                    return Err(ModelError::InconsistentFeatures {
                        example: row,
                        expected: *width,
                        found: features.len(),
                    });
                }
                if let Some(feature) = features.iter().position(|v| !v.is_finite()) {
                    return Err(ModelError::NonFiniteExample { example: row, feature });
                }
                values.extend_from_slice(features);
            }
            (Inputs::Text(texts), Input::Text(text)) => texts.push(text.clone()),
            (inputs, input) => {
                return Err(ModelError::WrongInput {
                    expected: match inputs {
                        Inputs::Tabular { .. } => InputKind::Tabular,
                        Inputs::Text(_) => InputKind::Text,
                    },
                    found: input.kind(),
                });
            }
        }
        let next = self.names.len() as u32;
        let class = *self.index.entry(example.label.clone()).or_insert_with(|| {
            self.names.push(example.label.clone());
            next
        });
        self.targets.push(class);
        Ok(())
    }

    /// The table: class names sorted, targets renumbered to match.
    pub fn finish(self) -> Table {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        let mut renumber = vec![0; order.len()];
        for (position, &name) in order.iter().enumerate() {
            renumber[name as usize] = position as u32;
        }
        let mut targets = self.targets;
        targets.iter_mut().for_each(|t| *t = renumber[*t as usize]);
        let mut names = self.names;
        let classes = order
            .iter()
            .map(|&name| std::mem::take(&mut names[name as usize]))
            .collect();
        Table {
            classes,
            targets,
            inputs: self.inputs.unwrap_or(Inputs::Tabular {
                width: 0,
                values: Vec::new(),
            }),
        }
    }
}

impl Table {
    /// The table of `examples`, in their order.
    ///
    /// Errors: as [`TableBuilder::push`].
    pub fn from_examples(examples: &[Example]) -> Result<Table, ModelError> {
        let mut builder = TableBuilder::with_capacity(examples.len());
        examples.iter().try_for_each(|e| builder.push(e))?;
        Ok(builder.finish())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Every row.
    pub fn all(&self) -> Rows<'_> {
        Rows {
            table: self,
            subset: None,
        }
    }

    /// The rows `rows` (indices into this table), in that order.
    pub fn subset<'a>(&'a self, rows: &'a [u32]) -> Rows<'a> {
        Rows {
            table: self,
            subset: Some(rows),
        }
    }

    /// Row `row`'s input.
    pub fn input(&self, row: usize) -> InputRef<'_> {
        match &self.inputs {
            Inputs::Tabular { width, values } => InputRef::Tabular(&values[row * width..][..*width]),
            Inputs::Text(texts) => InputRef::Text(&texts[row]),
        }
    }

    /// Row `row`'s class name.
    pub fn label(&self, row: usize) -> &str {
        &self.classes[self.targets[row] as usize]
    }

    /// Row `row` as an example again.
    pub fn example(&self, row: usize) -> Example {
        let input = match self.input(row) {
            InputRef::Tabular(features) => Input::Tabular(features.to_vec()),
            InputRef::Text(text) => Input::Text(text.to_owned()),
        };
        Example {
            input,
            label: self.label(row).to_owned(),
        }
    }

    /// Every row as an example, in order.
    pub fn to_examples(&self) -> Vec<Example> {
        (0..self.len()).map(|row| self.example(row)).collect()
    }
}

/// Some rows of a table: all of them, or a list of row indices.
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    table: &'a Table,
    subset: Option<&'a [u32]>,
}

/// The tabular rows a learner fits on: the table's matrix, the rows taken
/// from it, and their classes renumbered over the classes these rows have.
pub(super) struct Matrix<'a> {
    /// Row after row, `width` values each (the whole table's).
    pub values: &'a [f64],
    pub width: usize,
    /// The table rows taken, in the view's order.
    pub rows: Cow<'a, [u32]>,
    /// Per table row, its index in `classes` (meaningful for `rows` only).
    pub targets: Cow<'a, [u32]>,
    /// The class names these rows have, ascending.
    pub classes: Vec<String>,
}

impl Matrix<'_> {
    /// Table row `row`'s features.
    pub fn row(&self, row: u32) -> &[f64] {
        &self.values[row as usize * self.width..][..self.width]
    }
}

impl<'a> Rows<'a> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.subset.map_or(self.table.len(), <[u32]>::len)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table behind the view.
    pub fn table(&self) -> &'a Table {
        self.table
    }

    /// The table indices of the rows, in the view's order.
    pub fn indices(&self) -> impl Iterator<Item = usize> + 'a {
        let (all, subset) = match self.subset {
            Some(rows) => (0..0, rows.iter()),
            None => (0..self.table.len(), [].iter()),
        };
        all.chain(subset.map(|&r| r as usize))
    }

    /// What the rows are, by the table's kind (`None` when empty).
    pub fn kind(&self) -> Option<InputKind> {
        (!self.is_empty()).then(|| match self.table.inputs {
            Inputs::Tabular { .. } => InputKind::Tabular,
            Inputs::Text(_) => InputKind::Text,
        })
    }

    /// The rows as a matrix, for a tabular learner.
    ///
    /// Errors: [`ModelError::Empty`], [`ModelError::WrongInput`] for texts.
    pub(super) fn matrix(&self) -> Result<Matrix<'a>, ModelError> {
        if self.is_empty() {
            return Err(ModelError::Empty);
        }
        let Inputs::Tabular { width, values } = &self.table.inputs else {
            return Err(ModelError::WrongInput {
                expected: InputKind::Tabular,
                found: InputKind::Text,
            });
        };
        let (classes, targets) = self.present_classes();
        let rows = match self.subset {
            Some(rows) => Cow::Borrowed(rows),
            None => Cow::Owned((0..self.table.len() as u32).collect()),
        };
        Ok(Matrix {
            values,
            width: *width,
            rows,
            targets,
            classes,
        })
    }

    /// The texts and labels of the rows, for a text learner.
    ///
    /// Errors: [`ModelError::WrongInput`] for tabular rows.
    pub(super) fn texts(&self) -> Result<(Vec<&'a str>, Vec<&'a str>), ModelError> {
        match (&self.table.inputs, self.kind()) {
            (Inputs::Tabular { .. }, Some(found)) => Err(ModelError::WrongInput {
                expected: InputKind::Text,
                found,
            }),
            _ => Ok(self
                .indices()
                .map(|row| match self.table.input(row) {
                    InputRef::Text(text) => (text, self.table.label(row)),
                    InputRef::Tabular(_) => unreachable!("a table of texts"),
                })
                .unzip()),
        }
    }

    /// The classes the rows have, ascending, and each table row's index
    /// among them: the table's own when every class occurs (always for the
    /// whole table), else renumbered, as a learner fitted on these rows
    /// alone would number them.
    fn present_classes(&self) -> (Vec<String>, Cow<'a, [u32]>) {
        let table = self.table;
        let mut present = vec![false; table.classes.len()];
        match self.subset {
            None => present.fill(true),
            Some(rows) => rows
                .iter()
                .for_each(|&r| present[table.targets[r as usize] as usize] = true),
        }
        if present.iter().all(|p| *p) {
            return (table.classes.clone(), Cow::Borrowed(&table.targets));
        }
        let mut renumber = vec![u32::MAX; present.len()];
        let mut classes = Vec::new();
        for (class, _) in present.iter().enumerate().filter(|(_, p)| **p) {
            renumber[class] = classes.len() as u32;
            classes.push(table.classes[class].clone());
        }
        let targets = table.targets.iter().map(|&t| renumber[t as usize]).collect();
        (classes, Cow::Owned(targets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_sorted_and_subsets_renumber_the_classes_they_have() {
        let examples = [
            Example::tabular(vec![1.0, 2.0], "b"),
            Example::tabular(vec![3.0, 4.0], "c"),
            Example::tabular(vec![5.0, 6.0], "a"),
        ];
        let table = Table::from_examples(&examples).unwrap();
        assert_eq!(table.to_examples(), examples);
        let all = table.all().matrix().unwrap();
        assert_eq!(all.classes, ["a", "b", "c"]);
        assert_eq!(&*all.targets, [1, 2, 0]);
        assert_eq!(all.row(1), [3.0, 4.0]);
        // Rows 1 and 0 have classes c and b only: b becomes 0, c 1.
        let some = [1, 0];
        let subset = table.subset(&some).matrix().unwrap();
        assert_eq!(subset.classes, ["b", "c"]);
        assert_eq!((subset.targets[1], subset.targets[0]), (1, 0));
        assert_eq!(table.subset(&some).indices().collect::<Vec<_>>(), [1, 0]);
    }

    #[test]
    fn rows_a_learner_cannot_read_are_refused() {
        let mixed = [Example::tabular(vec![1.0], "a"), Example::text("words", "a")];
        assert!(matches!(
            Table::from_examples(&mixed),
            Err(ModelError::WrongInput {
                expected: InputKind::Tabular,
                found: InputKind::Text
            })
        ));
        let texts = Table::from_examples(&[Example::text("words", "a")]).unwrap();
        assert!(matches!(texts.all().matrix(), Err(ModelError::WrongInput { .. })));
        assert_eq!(texts.all().texts().unwrap(), (vec!["words"], vec!["a"]));
        let empty = Table::from_examples(&[]).unwrap();
        assert!(matches!(empty.all().matrix(), Err(ModelError::Empty)));
    }
}
