//! Background prediction traffic for the demo's hot-swap exercise: clients
//! predicting in a loop, recording when each answer came and from which
//! model version, and every failure.

use crate::client::Client;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;

/// What the load saw.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// (when the answer arrived, model version), in arrival order per client.
    pub answers: Vec<(DateTime<Utc>, i64)>,
    pub failures: usize,
}

impl Observed {
    /// The first answer from `version` at or after `since`.
    pub fn first_from(&self, version: i64, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.answers
            .iter()
            .filter(|(at, v)| *v == version && *at >= since)
            .map(|(at, _)| *at)
            .min()
    }
}

/// Running load; [`Load::stop`] ends it and returns what it saw.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Observed>>,
}

impl Load {
    /// Starts `clients` clients sending `inputs` round-robin.
    pub fn start(client: &Client, inputs: Vec<Vec<f64>>, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let inputs = Arc::new(inputs);
        let clients = (0..clients)
            .map(|offset| {
                let (client, stop, inputs) = (client.clone(), stop.clone(), inputs.clone());
                tokio::spawn(async move {
                    let mut seen = Observed::default();
                    let mut i = offset;
                    while !stop.load(Ordering::Relaxed) {
                        match client.predict(&inputs[i % inputs.len()]).await {
                            Ok(answer) => seen
                                .answers
                                .push((Utc::now(), answer["model_version"].as_i64().unwrap_or_default())),
                            Err(_) => seen.failures += 1,
                        }
                        i += 1;
                    }
                    seen
                })
            })
            .collect();
        Self { stop, clients }
    }

    /// Stops the clients and merges what they saw.
    pub async fn stop(self) -> Observed {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Observed::default();
        for client in self.clients {
            if let Ok(seen) = client.await {
                all.answers.extend(seen.answers);
                all.failures += seen.failures;
            }
        }
        all
    }
}
