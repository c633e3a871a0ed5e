//! The service's settings for a test or bench: the defaults plus the flags
//! the caller names, never the process's argv and never `RETRAIN_*` or
//! `DATABASE_URL` from the developer's shell, so a test behaves the same on
//! every machine.

use clap::{Args, FromArgMatches};
use retrain_api::settings::ServeSettings;

/// `retrain serve`'s settings from `flags` (as on its command line, e.g.
/// `["--role", "api", "--threshold", "5"]`) and the defaults.
///
/// # Panics
/// If a flag is unknown or its value invalid: the test is wrong.
pub fn serve_settings<'a>(flags: impl IntoIterator<Item = &'a str>) -> ServeSettings {
    let command =
        ServeSettings::augment_args(clap::Command::new("serve")).mut_args(|arg| arg.env(None::<&'static str>));
    let matches = command
        .try_get_matches_from(std::iter::once("serve").chain(flags))
        .unwrap_or_else(|e| panic!("bad serve flags: {e}"));
    ServeSettings::from_arg_matches(&matches).unwrap_or_else(|e| panic!("bad serve flags: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use retrain_api::settings::Role;
    use std::process::Command;

    /// Set for the copy of this test that runs with a hostile environment.
    const CHILD: &str = "RETRAIN_TESTKIT_SETTINGS_CHILD";

    #[test]
    fn serve_settings_ignore_the_shell_environment() {
        let settings = serve_settings(["--role", "api", "--threshold", "5"]);
        assert_eq!((settings.role, settings.threshold), (Role::Api, 5));
        if std::env::var_os(CHILD).is_some() {
            // The environment below would set all three if it were read.
            assert_ne!(settings.database.database_url, "postgres://shell/elsewhere");
            assert_ne!(settings.body_limit, 7);
            assert!(settings.admin_token.is_none());
            return;
        }
        // The crate forbids unsafe code, so `set_var` is out: this test runs
        // again in a child process whose environment sets the flags.
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "service::tests::serve_settings_ignore_the_shell_environment"])
            .env(CHILD, "1")
            .env("DATABASE_URL", "postgres://shell/elsewhere")
            .env("RETRAIN_BODY_LIMIT", "7")
            .env("RETRAIN_ADMIN_TOKEN", "from-the-shell")
            .env("RETRAIN_ROLE", "worker")
            .env("RETRAIN_THRESHOLD", "99")
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "the child saw the shell's settings:\n{}",
            String::from_utf8_lossy(&child.stdout)
        );
    }
}
