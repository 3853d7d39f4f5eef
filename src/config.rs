//! Typed configuration from the environment and an optional file.
