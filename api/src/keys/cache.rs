//! Key lookups remembered for a short time, so a request with a key costs a
//! hash and a map lookup rather than a database query. A revoked key is
//! refused by the replica that revoked it at once (it forgets the lookup)
//! and by every other replica once its remembered lookup expires: within
//! [`TTL`] plus one lookup. Unknown keys are remembered too, so a client
//! retrying with a bad key does not cost a query a request. When a lookup
//! expires, one request looks it up again while the others keep the
//! remembered answer: a busy key costs one query a second, not one per
//! request in flight at the moment it expires.

use super::{Caller, store};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a lookup is trusted: the longest a revoked key keeps working on
/// another replica.
pub const TTL: Duration = Duration::from_secs(1);

/// How long past [`TTL`] a lookup serves while another request looks it
/// up again; after that, every request looks it up itself (the first one's
/// query is stuck or failed).
const GRACE: Duration = Duration::from_secs(1);

/// Most remembered lookups; past it the memory starts over (a flood of
/// random keys cannot grow it without bound).
const MOST: usize = 10_000;

/// One remembered lookup.
#[derive(Debug)]
struct Entry {
    /// When it was looked up.
    at: Instant,
    caller: Option<Arc<Caller>>,
    /// A request is looking it up again.
    refreshing: bool,
}

/// Remembered lookups by key hash.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl KeyCache {
    /// The live key with this hash, from memory if looked up less than
    /// [`TTL`] ago (or less than [`GRACE`] past it while another request
    /// looks it up again), else from the database.
    ///
    /// # Errors
    /// The database's.
    pub async fn find(&self, pool: &PgPool, hash: [u8; 32]) -> Result<Option<Arc<Caller>>, sqlx::Error> {
        if let Some(entry) = self.lock().get_mut(&hash) {
            let age = entry.at.elapsed();
            if age < TTL || (entry.refreshing && age < TTL + GRACE) {
                return Ok(entry.caller.clone());
            }
            entry.refreshing = true;
        }
        let found = store::find(pool, &hash).await;
        let mut entries = self.lock();
        let caller = match found {
            Ok(caller) => caller.map(Arc::new),
            Err(error) => {
                if let Some(entry) = entries.get_mut(&hash) {
                    entry.refreshing = false;
                }
                return Err(error);
            }
        };
        if entries.len() >= MOST {
            entries.clear();
        }
        let entry = Entry {
            at: Instant::now(),
            caller: caller.clone(),
            refreshing: false,
        };
        entries.insert(hash, entry);
        Ok(caller)
    }

    /// Forgets every lookup of the key named `name` (it was just revoked here).
    pub fn forget(&self, name: &str) {
        self.lock()
            .retain(|_, entry| entry.caller.as_ref().is_none_or(|c| &*c.name != name));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
