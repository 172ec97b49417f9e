//! What every test binary shares (`it`, `it_postgres`, `cli`, `browser`, `multinode`,
//! `crash`, `datacenters`): one HTTP client and one answer type, and the ways to run grantd
//! under test.
//!
//! - `http`: `Http` (plain, or a browser keeping cookies), `Reply`, forms and redirects.
//! - `oauth`: test users and clients, token requests as Zoho's SDKs send them, and what a
//!   right answer is (CONTRACT.md).
//! - `server`: grantd in process on an ephemeral port with a `ManualClock` (`TestServer`).
//! - `database`: an in-process server's database (SQLite file or PostgreSQL), and reading it.
//! - `postgres`: `GRANTD_TEST_POSTGRES` and a database of its own per test, always dropped.
//! - `node`: the real binary: admin commands, `grantd serve` processes, requests to them.
//! - `datacenters`: three DCs (us, eu, in) as `grantd serve` processes that list each other,
//!   and the signed server-to-server requests between them.
//!
//! A crate root includes this with `mod support;` (from `tests/it/`, with
//! `#[path = "../support/mod.rs"]`) and imports what it uses from the submodules.

// Each test binary uses a part of these helpers. They fail the test the way a test does, by
// panicking; `allow-unwrap-in-tests` (clippy.toml) reaches `#[test]` functions only.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod database;
pub mod datacenters;
pub mod http;
pub mod node;
pub mod oauth;
pub mod postgres;
pub mod server;
