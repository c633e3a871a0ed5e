//! Key lookups remembered for a short time, so a request with a key costs a
//! hash and a map lookup rather than a database query. A revoked key is
//! refused by the replica that revoked it at once (it forgets the lookup,
//! and a lookup that was in flight during the revoke is answered but not
//! remembered) and by every other replica once its remembered lookup
//! expires: within [`TTL`] plus one lookup. Unknown keys are remembered too, so a client
//! retrying with a bad key does not cost a query a request. When a lookup
//! expires, one request looks it up again while the others keep the
//! remembered answer: a busy key costs one query a second, not one per
//! request in flight at the moment it expires.

use super::{Caller, store};
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
    memory: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    entries: HashMap<[u8; 32], Entry>,
    /// Counts [`KeyCache::forget`] calls: a lookup that started before the
    /// latest one may have read the key before its revoke committed, so it
    /// is not remembered.
    forgets: u64,
}

impl KeyCache {
    /// The live key with this hash, from memory if looked up less than
    /// [`TTL`] ago (or less than [`GRACE`] past it while another request
    /// looks it up again), else from the database.
    ///
    /// # Errors
    /// The database's.
    pub async fn find(&self, pool: &PgPool, hash: [u8; 32]) -> Result<Option<Arc<Caller>>, sqlx::Error> {
        self.find_by(hash, || store::find(pool, &hash)).await
    }

    /// [`KeyCache::find`] with the database lookup given, so the tests can
    /// hold one in flight while a key is revoked.
    async fn find_by<F>(&self, hash: [u8; 32], lookup: impl FnOnce() -> F) -> Result<Option<Arc<Caller>>, sqlx::Error>
    where
        F: Future<Output = Result<Option<Caller>, sqlx::Error>>,
    {
        let forgets = {
            let mut memory = self.lock();
            if let Some(entry) = memory.entries.get_mut(&hash) {
                let age = entry.at.elapsed();
                if age < TTL || (entry.refreshing && age < TTL + GRACE) {
                    return Ok(entry.caller.clone());
                }
                entry.refreshing = true;
            }
            memory.forgets
        };
        let found = lookup().await;
        let mut memory = self.lock();
        let caller = match found {
            Ok(caller) => caller.map(Arc::new),
            Err(error) => {
                if let Some(entry) = memory.entries.get_mut(&hash) {
                    entry.refreshing = false;
                }
                return Err(error);
            }
        };
        if memory.forgets != forgets {
            memory.entries.remove(&hash);
            return Ok(caller);
        }
        if memory.entries.len() >= MOST {
            memory.entries.clear();
        }
        let entry = Entry {
            at: Instant::now(),
            caller: caller.clone(),
            refreshing: false,
        };
        memory.entries.insert(hash, entry);
        Ok(caller)
    }

    /// Forgets every lookup of the key named `name` (it was just revoked
    /// here), and the answers of lookups in flight.
    pub fn forget(&self, name: &str) {
        let mut memory = self.lock();
        memory.forgets += 1;
        memory
            .entries
            .retain(|_, entry| entry.caller.as_ref().is_none_or(|c| &*c.name != name));
    }

    fn lock(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    fn caller(name: &str) -> Option<Caller> {
        Some(Caller {
            name: name.into(),
            scopes: Vec::new(),
            model: None,
            flagged: false,
        })
    }

    #[tokio::test]
    async fn a_lookup_in_flight_while_its_key_is_revoked_here_is_answered_but_not_remembered() {
        let cache = KeyCache::default();
        let lookups = AtomicUsize::new(0);
        let lookup = |answer: Option<Caller>| {
            lookups.fetch_add(1, Ordering::SeqCst);
            async move { Ok(answer) }
        };
        let other = [1; 32];
        cache.find_by(other, || lookup(caller("other"))).await.unwrap();
        cache.find_by(other, || lookup(caller("other"))).await.unwrap();
        assert_eq!(lookups.load(Ordering::SeqCst), 1, "an undisturbed lookup is remembered");

        let hash = [7; 32];
        let (release, held) = oneshot::channel::<()>();
        let in_flight = cache.find_by(hash, || async {
            held.await.expect("released");
            Ok(caller("app"))
        });
        let revoke = async {
            tokio::task::yield_now().await;
            cache.forget("app");
            release.send(()).expect("the lookup waits");
        };
        let (found, ()) = tokio::join!(in_flight, revoke);
        assert_eq!(found.unwrap().expect("it was live when read").name.as_ref(), "app");
        let after = cache.find_by(hash, || lookup(None)).await.unwrap();
        assert!(after.is_none(), "the revoked key is looked up again and refused");
        assert_eq!(lookups.load(Ordering::SeqCst), 2);
    }
}
