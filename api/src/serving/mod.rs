//! The model this replica serves: an atomic pointer swapped whole, and the
//! listener that follows promotions.

mod freshness;
mod listener;
mod loader;

pub use freshness::{Behind, DEFAULT_STALE_AFTER, Freshness};
pub use listener::{ModelFilter, follow_promotions};
pub use loader::{ServedModel, Serving, load_champion};
