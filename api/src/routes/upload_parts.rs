//! A two-file upload (`multipart/form-data` with the part `data`, then the
//! part `golden`) as the blocking readers an import takes: a task forwards
//! each part's bytes, as they arrive, into a bounded channel that a reader
//! on the import's thread drains. The import reads the data file to its end
//! before the golden file, the order the parts arrive in, so neither file
//! is held in memory.

use axum::body::Bytes;
use axum::extract::Multipart;
use std::io::{self, Read};
use tokio::sync::mpsc;

/// Chunks in flight per part.
const IN_FLIGHT: usize = 8;

/// The readers of the two parts.
pub struct Parts {
    pub data: PartReader,
    pub golden: PartReader,
}

/// Reads one part's bytes as the forwarding task receives them; an error of
/// the upload (a broken connection, a part missing or out of order) comes
/// out as an I/O error, which the import reports.
pub struct PartReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for PartReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(err)) => return Err(err),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Starts forwarding `multipart`'s parts `data` and `golden`, in that order.
pub fn split(mut multipart: Multipart) -> Parts {
    let (data_tx, data_rx) = mpsc::channel(IN_FLIGHT);
    let (golden_tx, golden_rx) = mpsc::channel(IN_FLIGHT);
    tokio::spawn(async move {
        for (name, sender) in [("data", data_tx), ("golden", golden_tx)] {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => {
                    let missing =
                        io::Error::new(io::ErrorKind::InvalidData, format!("the upload has no part {name:?}"));
                    let _ = sender.send(Err(missing)).await;
                    return;
                }
                Err(err) => {
                    let _ = sender.send(Err(io::Error::other(err))).await;
                    return;
                }
            };
            if field.name() != Some(name) {
                let wrong = io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the parts are \"data\" then \"golden\"; part {:?} came where {name:?} was expected",
                        field.name().unwrap_or("")
                    ),
                );
                let _ = sender.send(Err(wrong)).await;
                return;
            }
            let mut field = field;
            loop {
                let chunk = match field.chunk().await {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => break,
                    Err(err) => Err(io::Error::other(err)),
                };
                let failed = chunk.is_err();
                // The import stopped reading (it refused the file): stop too.
                if sender.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        }
    });
    Parts {
        data: PartReader {
            chunks: data_rx,
            current: Bytes::new(),
        },
        golden: PartReader {
            chunks: golden_rx,
            current: Bytes::new(),
        },
    }
}
