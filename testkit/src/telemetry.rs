//! Logs for tests and benches: silent unless `RUST_LOG` asks for them, so a
//! passing run prints only its results and a failing one can be re-run with
//! `RUST_LOG=retrain_engine=debug` to see why. Output goes through the test
//! writer, so libtest shows it only for the test that failed.

use std::sync::Once;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::{Identity, Layer, SubscriberExt};
use tracing_subscriber::{Registry, fmt};

static INIT: Once = Once::new();

/// Installs the global subscriber once per process if `RUST_LOG` is set;
/// otherwise nothing is installed and logging costs nothing. Safe to call
/// from every test.
pub fn init() {
    if std::env::var_os("RUST_LOG").is_some() {
        init_with(Identity::new());
    }
}

/// Installs `layer` (a bench's own instrument, such as a statement counter)
/// as the global subscriber, with the `RUST_LOG` output of [`init`] beside
/// it. Only the first call of a process installs anything.
pub fn init_with<L>(layer: L)
where
    L: Layer<Registry> + Send + Sync + 'static,
{
    INIT.call_once(|| {
        let logs = std::env::var_os("RUST_LOG").map(|_| {
            fmt::layer()
                .with_test_writer()
                .with_filter(EnvFilter::from_default_env())
        });
        let subscriber = tracing_subscriber::registry().with(layer).with(logs);
        // Another subscriber already set (by the code under test) wins. No
        // `log` bridge: a bench's figures should not pay for one.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}
