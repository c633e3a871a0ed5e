//! Reading and writing the pipeline's tables, one file per concern.

pub mod datasets;
pub mod evaluations;
pub mod feedback;
pub mod models;
pub mod promotions;
pub mod validations;
pub mod versions;
