//! The fault suite (docs/security.md R-rows): the real server under a stopped or frozen
//! database, slow clients and other faults. Each case is bounded in time. It shares the
//! harness of `tests/api` (boot on port 0, throwaway PostgreSQL), but takes a PostgreSQL
//! cluster of its own wherever it stops or freezes the database.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a failed test"
)]

#[path = "../api/helpers/mod.rs"]
mod helpers;

mod clock_skew;
mod crash;
mod database;
mod disk_full;
mod disk_full_pg;
mod janitor;
mod journal;
mod load;
mod outage_load;
mod oversized;
mod process;
mod races;
mod shutdown;
mod slow_clients;
