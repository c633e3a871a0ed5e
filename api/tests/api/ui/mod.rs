//! The operator console in a real browser: headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, which
//! `scripts/test` installs) against the real service with real runs.

mod actions;
mod browser;
mod pages;
