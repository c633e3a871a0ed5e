//! The envelope every learner's artifact shares: a format number, then the
//! model in postcard, nothing after. One reader, so each learner only says
//! which format it writes and how to check what it decoded.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ModelError;

/// `model` as artifact bytes of format `format`.
pub(super) fn encode<T: Serialize>(format: u32, model: &T) -> Vec<u8> {
    let bytes = postcard::to_allocvec(&format).expect("a u32 always encodes");
    postcard::to_extend(model, bytes).expect("a model always encodes")
}

/// Decodes artifact bytes of format `format`.
///
/// Errors: [`ModelError::Decode`] for bytes that are not an artifact,
/// [`ModelError::UnsupportedFormat`] for another format number,
/// [`ModelError::Corrupt`] for trailing bytes.
pub(super) fn decode<T: DeserializeOwned>(format: u32, bytes: &[u8]) -> Result<T, ModelError> {
    let (found, rest) = postcard::take_from_bytes::<u32>(bytes)?;
    if found != format {
        return Err(ModelError::UnsupportedFormat {
            expected: format,
            found,
        });
    }
    let (model, rest) = postcard::take_from_bytes::<T>(rest)?;
    if !rest.is_empty() {
        return Err(ModelError::Corrupt(format!("{} trailing bytes", rest.len())));
    }
    Ok(model)
}
