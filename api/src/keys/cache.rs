//! Key lookups remembered for a short time, so a request with a key costs a
//! hash and a map lookup rather than a database query. A revoked key is
//! refused by the replica that revoked it at once (it forgets the lookup)
//! and by every other replica once its remembered lookup expires: within
//! [`TTL`]. Unknown keys are remembered too, so a client retrying with a bad
//! key does not cost a query a request.

use super::{Caller, store};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a lookup is trusted: the longest a revoked key keeps working on
/// another replica.
pub const TTL: Duration = Duration::from_secs(1);

/// Most remembered lookups; past it the memory starts over (a flood of
/// random keys cannot grow it without bound).
const MOST: usize = 10_000;

type Entry = (Instant, Option<Arc<Caller>>);

/// Remembered lookups by key hash.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl KeyCache {
    /// The live key with this hash, from memory if looked up less than
    /// [`TTL`] ago, else from the database.
    ///
    /// # Errors
    /// The database's.
    pub async fn find(&self, pool: &PgPool, hash: [u8; 32]) -> Result<Option<Arc<Caller>>, sqlx::Error> {
        if let Some((at, caller)) = self.lock().get(&hash)
            && at.elapsed() < TTL
        {
            return Ok(caller.clone());
        }
        let caller = store::find(pool, &hash).await?.map(Arc::new);
        let mut entries = self.lock();
        if entries.len() >= MOST {
            entries.clear();
        }
        entries.insert(hash, (Instant::now(), caller.clone()));
        Ok(caller)
    }

    /// Forgets every lookup of the key named `name` (it was just revoked here).
    pub fn forget(&self, name: &str) {
        self.lock()
            .retain(|_, (_, caller)| caller.as_ref().is_none_or(|c| &*c.name != name));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
