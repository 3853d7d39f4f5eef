//! The server bootstrap.
