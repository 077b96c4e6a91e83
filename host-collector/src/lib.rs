//! # host-collector (`hub-collector`)
//!
//! A native agent (not a function) that samples this host with `sysinfo` and pushes the samples
//! to the gateway's `metrics-flush` (`POST /api/metrics`). Each metric is a row of
//! `system_metrics` in the shape the old hub's Grafana dashboards read:
//!
//! - `cpu`: `{"usage": %, "package_temp": °C, "core_temps": {"core_0": °C, …}, "cores": [% per
//!   core]}`; temperatures from hwmon under `--sysfs` ([`hwmon`]), `0` and `{}` without sensors;
//! - `memory`: `{"total", "available", "used", "used_percent", "swap_total", "swap_used"}`;
//! - `disk`: mount point → `{"total", "used", "free", "used_percent"}`, block-device
//!   filesystems only, `/boot` and below skipped;
//! - `network`: interface → `{"rx_bytes", "tx_bytes"}`, virtual interfaces skipped;
//! - `host`: OS name and version, kernel, uptime.
//!
//! Samples carry the host name (`--host-name` to override; `homelab` when the system's cannot be
//! read) and `os` as `"<platform> <version>"` (`debian 12.7`).
//!
//! Every sample goes to an on-disk spool first and leaves it only once the gateway accepted it,
//! so samples taken while the gateway or its database is down are replayed, in order, by the
//! next successful push (see [`spool`]).
//!
//! **Run:** `hub-collector` (every `--interval`, aligned to the wall clock), `hub-collector
//! --once` (for a systemd timer), `hub-collector --print` (one sample as JSON). `--help` lists
//! the flags and their environment variables (`HUB_GATEWAY_URL`, `HUB_COLLECTOR_TOKEN` /
//! `_FILE`, …). Needs no privileges. `--metrics-addr` (`HUB_COLLECTOR_METRICS_ADDR`) serves the
//! agent's own counters to Prometheus ([`stats`]).

pub mod hwmon;
pub mod push;
pub mod sample;
pub mod spool;
pub mod stats;
