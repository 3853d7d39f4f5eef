//! Helpers shared by the integration tests (a module of each test binary that declares
//! `mod common;`, not a test target of its own).

#[cfg(feature = "events")]
pub(crate) mod events;
