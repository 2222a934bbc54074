//! Tests that need the real `signhook` binary: signals and kill -9, database
//! outages (on a throwaway cluster), replicas, the command line, the upgrade
//! of a database from the first schema, and assertions on log lines and
//! `/metrics` values (the log subscriber and the metrics recorder are
//! process-wide, so only a process of its own shows one app's).

// Shared with tests/api, which uses all of it (unused code is caught
// there); this binary uses a part.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod helpers;

mod body_memory;
mod cli;
mod connections;
mod deliveries;
mod documents;
mod faults;
mod logs;
mod metrics;
mod migrations;
mod outage;
mod simulate;
