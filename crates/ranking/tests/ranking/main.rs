//! The ranking crate's integration tests, in one binary: the golden vectors every release must
//! reproduce, and properties over random tables.

mod conformance;
mod expected;
mod golden;
mod options;
mod props;

pub use expected::expected;
