//! The integration suite of `tests/it` once more, on PostgreSQL: the same tests, each test
//! server on a fresh database, created on the server `GRANTD_TEST_POSTGRES` names and dropped
//! with the test server. Without that variable every test says it is skipped, and passes.
//! See tests/it/main.rs.

/// Read by the harness as `crate::POSTGRES`: this binary runs the suite on PostgreSQL.
pub const POSTGRES: bool = true;

// A module file loaded with `#[path]` looks for its own `mod x;` children beside it, in
// tests/it, so every test module comes along.
#[path = "it/main.rs"]
mod suite;

// The tests name the harness `crate::...`, as they do in their own binary.
pub use suite::*;
