//! `Idempotency-Key` for `POST /feedback` and `POST /runs`: a client that
//! retries a request (after a timeout, a 503, a dropped connection) with the
//! same key gets the first answer again, same status and body, and nothing
//! new is stored. The same key with another body is refused with 409
//! `idempotency_key_reused`.
//!
//! Three parts: [`key`] parses the header into a key and a request's claim on
//! it; [`store`] keeps keys and their answers in `idempotency_keys`, claimed
//! and completed inside the transaction that stores the request's effect (so
//! a key is never recorded without its effect, nor an effect without its key,
//! and a concurrent retry waits on the key's row lock and then replays the
//! committed answer); [`keyed_feedback`] is the group commit of keyed
//! feedback. A request that is refused or fails records nothing: the key
//! stays free for the retry.
//!
//! Keys answer for [`RETENTION_HOURS`]; an older row counts as absent (a new
//! request reclaims it) and is deleted by a lazy prune, at most every
//! [`PRUNE_EVERY`] per process.

pub mod key;
pub mod keyed_feedback;
pub mod store;

pub use key::{Claim, HEADER, IdempotencyKey, KeyHeader, MAX_KEY_LEN, RequestHash};
pub use keyed_feedback::{KeyedFeedbackWriter, Stored};
pub use store::{
    PRUNE_EVERY, REPLAYED_HEADER, RETENTION_HOURS, Replay, Scope, claim, complete, lookup, prune, prune_lazily,
};
