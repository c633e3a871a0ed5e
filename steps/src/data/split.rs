//! The deterministic base/golden split and the per-class checks at its end
//! (issue 11: the import of a dataset version calls [`Splitter::assign`] on
//! each row and [`Splitter::finish`] before it commits).
//!
//! A row's part depends only on its normalized input's hash, so the same
//! file, in any row order, splits the same way, and equal inputs always land
//! in the same part (an input never validates the model it trained).

use super::{ImportError, InputHash, Row, input_hash};
use std::collections::BTreeMap;

/// Where a row goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// Trains.
    Base,
    /// Only validates.
    Golden,
}

/// The share of rows that go to the golden set: strictly between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct GoldenShare(f64);

impl GoldenShare {
    /// The share when none is given.
    pub const DEFAULT: Self = Self(0.2);

    /// Errors: [`ImportError::InvalidShare`] unless `0 < share < 1`.
    pub fn new(share: f64) -> Result<Self, ImportError> {
        if share > 0.0 && share < 1.0 {
            Ok(Self(share))
        } else {
            Err(ImportError::InvalidShare { share })
        }
    }

    /// The share as a number.
    pub fn get(self) -> f64 {
        self.0
    }

    /// The part of an input with this hash: golden when the hash's first 8
    /// bytes, read as a fraction of 2^64, fall below the share.
    fn part_of(self, hash: &InputHash) -> Part {
        // 2^64 as f64 is exact; the product rounds by at most one unit in
        // 2^64, far below any share a user writes.
        let threshold = self.0 * 18_446_744_073_709_551_616.0;
        if (hash.position() as f64) < threshold {
            Part::Golden
        } else {
            Part::Base
        }
    }
}

impl Default for GoldenShare {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where the golden set comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Golden {
    /// A share of the data file's rows, chosen by hash.
    Share(GoldenShare),
    /// A separate file: every row of the data file trains, every row of the
    /// golden file validates.
    File,
}

/// Rows of one class in each part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCount {
    /// Rows that train.
    pub base: u64,
    /// Rows that validate.
    pub golden: u64,
}

/// What an import split: rows per class and part, classes in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SplitSummary {
    /// Every class with its counts.
    pub classes: BTreeMap<String, ClassCount>,
}

/// Assigns rows to parts as they stream by and counts them per class.
#[derive(Debug)]
pub struct Splitter {
    golden: Golden,
    summary: SplitSummary,
}

impl Splitter {
    /// A splitter with no rows yet.
    pub fn new(golden: Golden) -> Self {
        Self {
            golden,
            summary: SplitSummary::default(),
        }
    }

    /// The part of a data-file row, and its input hash (to store with it).
    pub fn assign(&mut self, row: &Row) -> (Part, InputHash) {
        let hash = input_hash(&row.input);
        let part = match self.golden {
            Golden::Share(share) => share.part_of(&hash),
            Golden::File => Part::Base,
        };
        self.count(&row.label, part);
        (part, hash)
    }

    /// Counts a row of the explicit golden file ([`Golden::File`]); returns
    /// its input hash.
    pub fn assign_golden_file_row(&mut self, row: &Row) -> InputHash {
        self.count(&row.label, Part::Golden);
        input_hash(&row.input)
    }

    fn count(&mut self, label: &str, part: Part) {
        // Look up by &str first: almost every row's class is already there.
        let count = match self.summary.classes.get_mut(label) {
            Some(count) => count,
            None => self.summary.classes.entry(label.to_owned()).or_default(),
        };
        match part {
            Part::Base => count.base += 1,
            Part::Golden => count.golden += 1,
        }
    }

    /// Checks that every class can be trained and validated. `classes` are
    /// the model's declared class names, if it has any yet; a class that
    /// appears only in the data is checked too.
    ///
    /// Errors, first class in name order first: [`ImportError::NoRows`],
    /// [`ImportError::EmptyClass`] (no base rows),
    /// [`ImportError::NoGoldenRows`] (the share left the class without golden
    /// rows), [`ImportError::NoGoldenRowsInFile`] (the golden file lacks it).
    pub fn finish(mut self, classes: &[String]) -> Result<SplitSummary, ImportError> {
        if self.summary.classes.is_empty() {
            return Err(ImportError::NoRows);
        }
        for class in classes {
            self.summary.classes.entry(class.clone()).or_default();
        }
        if let [(only, _)] = Vec::from_iter(&self.summary.classes)[..] {
            return Err(ImportError::OneClass { class: only.clone() });
        }
        for (class, count) in &self.summary.classes {
            if count.base == 0 {
                return Err(ImportError::EmptyClass { class: class.clone() });
            }
            if count.golden == 0 {
                return Err(match self.golden {
                    Golden::Share(share) => ImportError::NoGoldenRows {
                        class: class.clone(),
                        rows: count.base,
                        share: share.get(),
                    },
                    Golden::File => ImportError::NoGoldenRowsInFile { class: class.clone() },
                });
            }
        }
        Ok(self.summary)
    }
}
