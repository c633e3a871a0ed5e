//! The byte stream under both readers, line by line: buffered, and cut off
//! at the size limit with [`ImportError::TooLarge`], wherever in a line the
//! limit is crossed.

use super::ImportError;
use std::io::{self, BufRead, BufReader, Read};

/// A buffered reader that refuses to read past `limit` bytes.
pub(super) struct Source<R> {
    inner: BufReader<Limited<R>>,
    limit: u64,
}

impl<R: Read> Source<R> {
    pub(super) fn new(reader: R, limit: u64) -> Self {
        Self {
            inner: BufReader::with_capacity(
                64 * 1024,
                Limited {
                    inner: reader,
                    left: limit,
                },
            ),
            limit,
        }
    }

    /// Reads one line, newline included, into `buf` (cleared first);
    /// returns false at the end of the stream.
    pub(super) fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<bool, ImportError> {
        buf.clear();
        let n = self.inner.read_until(b'\n', buf).map_err(|e| self.error(e))?;
        Ok(n > 0)
    }

    /// The reader's I/O error as an import error: the size limit's own
    /// error becomes [`ImportError::TooLarge`].
    fn error(&self, e: io::Error) -> ImportError {
        if e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
            ImportError::TooLarge { limit: self.limit }
        } else {
            ImportError::Io(e)
        }
    }
}

/// The marker inside the `io::Error` that [`Limited`] returns.
#[derive(Debug)]
struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("input over the size limit")
    }
}

impl std::error::Error for OverLimit {}

/// Counts bytes down from the limit; one byte past it is an error, so a file
/// of exactly `limit` bytes still reads.
struct Limited<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte more than allowed, to tell "exactly at the limit"
        // from "over it".
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::other(OverLimit));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
