//! Tells producers when their run has ended, and when that was seen: by a
//! LISTEN on the bench's end trigger, or by polling the runs table.

use crate::Result;
use crate::options::Observe;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The channel of the bench's end trigger (`database::install_end_trigger`).
const ENDED_CHANNEL: &str = "bench_run_ended";
const WAIT_LIMIT: Duration = Duration::from_secs(60);

enum Slot {
    Waiting(oneshot::Sender<(Instant, String)>),
    Ended(Instant, String),
}

/// Tells producers when their run has ended, and when that was seen.
pub struct Observer {
    slots: Mutex<HashMap<Uuid, Slot>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Observer {
    pub async fn start(method: Observe, pool: &PgPool) -> Result<Arc<Self>> {
        let observer = Arc::new(Self {
            slots: Mutex::new(HashMap::new()),
            task: Mutex::new(None),
        });
        let task = match method {
            Observe::Listen => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.ignore_pool_close_event(true);
                listener.listen(ENDED_CHANNEL).await?;
                let observer = observer.clone();
                tokio::spawn(async move {
                    loop {
                        match listener.recv().await {
                            Ok(notification) => {
                                let at = Instant::now();
                                let Some((id, status)) = notification.payload().split_once(' ') else {
                                    continue;
                                };
                                if let Ok(id) = Uuid::parse_str(id) {
                                    observer.resolve(id, at, status.to_owned());
                                }
                            }
                            Err(err) => {
                                eprintln!("observer: listener error: {err}");
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                })
            }
            Observe::Poll => {
                let pool = pool.clone();
                let observer = observer.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        let ids = observer.waiting();
                        if ids.is_empty() {
                            continue;
                        }
                        let ended: Result<Vec<(Uuid, String)>, _> = sqlx::query_as(
                            "SELECT id, status::text FROM runs
                             WHERE id = ANY($1) AND status NOT IN ('queued', 'running')",
                        )
                        .bind(&ids)
                        .fetch_all(&pool)
                        .await;
                        let at = Instant::now();
                        match ended {
                            Ok(rows) => rows
                                .into_iter()
                                .for_each(|(id, status)| observer.resolve(id, at, status)),
                            Err(err) => eprintln!("observer: poll error: {err}"),
                        }
                    }
                })
            }
        };
        *observer.task.lock().unwrap() = Some(task);
        Ok(observer)
    }

    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    fn waiting(&self) -> Vec<Uuid> {
        let slots = self.slots.lock().unwrap();
        slots
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Waiting(_)))
            .map(|(id, _)| *id)
            .collect()
    }

    fn resolve(&self, id: Uuid, at: Instant, status: String) {
        let mut slots = self.slots.lock().unwrap();
        match slots.remove(&id) {
            Some(Slot::Waiting(tx)) => {
                let _ = tx.send((at, status));
            }
            _ => {
                slots.insert(id, Slot::Ended(at, status));
            }
        }
    }

    /// When the run was seen ending, and in which status.
    pub async fn wait(&self, id: Uuid) -> Result<(Instant, String)> {
        let rx = {
            let mut slots = self.slots.lock().unwrap();
            match slots.remove(&id) {
                Some(Slot::Ended(at, status)) => return Ok((at, status)),
                Some(Slot::Waiting(_)) => return Err(format!("run {id} awaited twice").into()),
                None => {
                    let (tx, rx) = oneshot::channel();
                    slots.insert(id, Slot::Waiting(tx));
                    rx
                }
            }
        };
        match tokio::time::timeout(WAIT_LIMIT, rx).await {
            Ok(Ok(seen)) => Ok(seen),
            Ok(Err(_)) => Err("observer stopped".into()),
            Err(_) => Err(format!("run {id} not seen ending within {WAIT_LIMIT:?}").into()),
        }
    }
}
