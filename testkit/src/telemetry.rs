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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Set for the copy of this test that logs.
    const CHILD: &str = "RETRAIN_TESTKIT_TELEMETRY_CHILD";
    const LINE: &str = "a warning a failing test would show";

    /// Whether this test, run again in a child with `rust_log`, printed
    /// its warning.
    fn child_logs(rust_log: Option<&str>) -> bool {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "telemetry::tests::logs_appear_only_when_rust_log_asks",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let output = command.output().unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).contains(LINE)
    }

    #[test]
    fn logs_appear_only_when_rust_log_asks() {
        if std::env::var_os(CHILD).is_some() {
            init();
            tracing::warn!("{LINE}");
            return;
        }
        assert!(!child_logs(None), "quiet without RUST_LOG");
        assert!(child_logs(Some("warn")), "shown with RUST_LOG=warn");
        assert!(!child_logs(Some("error")), "filtered by RUST_LOG=error");
    }
}
