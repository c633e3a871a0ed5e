//! The normalized input and its hash: the identity of an input for the
//! base/golden split (so re-importing a file gives the same split, whatever
//! the row order) and for golden leakage (issue 11: merge's screening drops a
//! feedback row whose hash equals a golden row's; it will call
//! [`input_hash`] on each feedback input).

use super::Input;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The sha256 of an input's canonical encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InputHash(pub [u8; 32]);

impl InputHash {
    /// The hash as 64 lowercase hex digits, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 bytes as a number: where the input falls in the split.
    pub(super) fn position(&self) -> u64 {
        let mut first = [0; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(first)
    }
}

/// Text as compared for identity: lowercase (Unicode's full mapping, so
/// "STRASSE" and "strasse" meet), words separated by single spaces, no
/// leading or trailing whitespace.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// The hash of an input's normalized form.
///
/// Text hashes its [`normalize_text`] form; a tabular input hashes each
/// feature's f64 bits, with -0.0 taken as 0.0 (they compare equal). A tag
/// byte keeps a text from ever meeting a tabular input.
pub fn input_hash(input: &Input) -> InputHash {
    let mut hasher = Sha256::new();
    match input {
        Input::Text(text) => {
            hasher.update(b"t");
            hasher.update(normalize_text(text).as_bytes());
        }
        Input::Tabular(features) => {
            hasher.update(b"f");
            for &x in features {
                let x = if x == 0.0 { 0.0 } else { x };
                hasher.update(x.to_bits().to_le_bytes());
            }
        }
    }
    InputHash(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> InputHash {
        input_hash(&Input::Text(s.to_owned()))
    }

    #[test]
    fn text_that_differs_in_case_and_spacing_hashes_the_same() {
        assert_eq!(normalize_text("  Hello\t WORLD\r\n"), "hello world");
        assert_eq!(text("Hello world"), text("  hello \n WORLD "));
        assert_eq!(text("ÉCOLE Straße"), text("école straße"));
        assert_ne!(text("hello world"), text("helloworld"));
    }

    #[test]
    fn tabular_inputs_hash_by_value() {
        let h = |v: &[f64]| input_hash(&Input::Tabular(v.to_vec()));
        assert_eq!(h(&[1.0, -0.0]), h(&[1.0, 0.0]));
        assert_ne!(h(&[1.0, 2.0]), h(&[2.0, 1.0]));
        assert_ne!(h(&[1.0]), h(&[1.0 + f64::EPSILON]));
    }

    #[test]
    fn a_text_never_meets_a_tabular_input() {
        // Eight bytes of text equal to the bits of one feature must not collide.
        let bits = 1.5f64.to_bits().to_le_bytes();
        let as_text = String::from_utf8_lossy(&bits).into_owned();
        assert_ne!(text(&as_text), input_hash(&Input::Tabular(vec![1.5])));
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_tagged_encoding() {
        // sha256("thello world"), computed independently with `printf
        // 'thello world' | sha256sum`.
        assert_eq!(
            text("Hello  World").to_hex(),
            "a51d33da1fc10062c4473313bb8b92e84eb63ccb0fbef65962fb5d3d0d491e5d"
        );
    }
}
