//! The content hash a training set is recorded with and checked against
//! when it is rebuilt: sha256 over every row's input then label, fed one
//! row at a time, so the rows can be hashed as they are read and need not
//! be held.

use crate::ml::{Example, Input};
use sha2::{Digest, Sha256};

/// Bytes gathered before the hasher takes them.
const CHUNK: usize = 64 * 1024;

/// A training set's hash being computed, row after row.
#[derive(Debug, Clone, Default)]
pub struct ContentHash {
    hasher: Sha256,
    bytes: Vec<u8>,
}

impl ContentHash {
    /// Adds the next row: features as f64 little-endian, a text as its
    /// length (u64 LE) and UTF-8 bytes; a label that is a decimal integer
    /// as that i64 LE (as earlier releases, whose labels were integers,
    /// hashed it, so their recorded sets still rebuild), any other as 0xFF,
    /// its length and bytes.
    pub fn add(&mut self, example: &Example) {
        let bytes = &mut self.bytes;
        match &example.input {
            Input::Tabular(features) => {
                for x in features {
                    bytes.extend_from_slice(&x.to_le_bytes());
                }
            }
            Input::Text(text) => {
                bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
                bytes.extend_from_slice(text.as_bytes());
            }
        }
        match example.label.parse::<i64>() {
            Ok(integer) if integer.to_string() == example.label => bytes.extend_from_slice(&integer.to_le_bytes()),
            _ => {
                bytes.push(0xFF);
                bytes.extend_from_slice(&(example.label.len() as u64).to_le_bytes());
                bytes.extend_from_slice(example.label.as_bytes());
            }
        }
        if bytes.len() >= CHUNK {
            self.hasher.update(&*bytes);
            bytes.clear();
        }
    }

    /// The hash, as lower-case hex.
    pub fn finish(mut self) -> String {
        self.hasher.update(&self.bytes);
        hex::encode(self.hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_hash_is_the_hash_of_all_rows_at_once() {
        // More rows than one chunk of the streamed hash.
        let rows: Vec<Example> = (0..10_000)
            .map(|i| Example::tabular(vec![f64::from(i) / 7.0, 0.5], (i % 2).to_string()))
            .collect();
        let mut bytes = Vec::new();
        let mut streamed = ContentHash::default();
        for e in &rows {
            for x in e.input.features().unwrap() {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            bytes.extend_from_slice(&e.label.parse::<i64>().unwrap().to_le_bytes());
            streamed.add(e);
        }
        assert_eq!(streamed.finish(), crate::ml::sha256_hex(&bytes));
    }
}
