//! # host-collector (`hub-collector`)
//!
//! A native agent (not a function) that samples this host with `sysinfo` — CPU total and per
//! core, per-core and package temperatures where hwmon exposes them, memory and swap, disks per
//! mount (pseudo filesystems skipped), network bytes per interface (virtual ones skipped), OS and
//! uptime — and pushes the samples to the gateway's `metrics-flush` (`POST /api/metrics`).
//!
//! Every sample goes to an on-disk spool first and leaves it only once the gateway accepted it,
//! so samples taken while the gateway or its database is down are replayed, in order, by the
//! next successful push (see [`spool`]).
//!
//! **Run:** `hub-collector` (every `--interval`, aligned to the wall clock), `hub-collector
//! --once` (for a systemd timer), `hub-collector --print` (one sample as JSON). `--help` lists
//! the flags and their environment variables (`HUB_GATEWAY_URL`, `HUB_COLLECTOR_TOKEN` /
//! `_FILE`, …). Needs no privileges.

pub mod push;
pub mod sample;
pub mod spool;
