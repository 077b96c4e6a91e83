//! One sample of this host, taken with `sysinfo` (interface counters on Linux from
//! `/proc/net/dev`, see `NetworkSource`). The `Sampler` keeps its `System`, disk and sensor lists
//! between samples, so each sample only refreshes values (and CPU usage is measured over the
//! interval since the previous sample). Each refresh asks only for what the sample reports: a
//! `--once` run is mostly process start plus these reads, so every file read counts.

use crate::hwmon;
use chrono::{SubsecRound, Utc};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use sysinfo::{DiskRefreshKind, Disks, MemoryRefreshKind, Networks, System};

/// Interface name prefixes that are virtual, skipped like the seed did (configurable).
pub const DEFAULT_EXCLUDED_INTERFACES: &[&str] = &[
    "lo",
    "docker",
    "veth",
    "br-",
    "tun",
    "tailscale",
    "wg",
    "zt",
    "dummy",
    "virbr",
    "cni",
    "flannel",
    "ifb",
];

/// Filesystems that are not storage.
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "tmpfs",
    "devtmpfs",
    "devpts",
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "overlay",
    "squashfs",
    "autofs",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "ramfs",
    "nsfs",
    "efivarfs",
    "binfmt_misc",
    "rpc_pipefs",
    "fuse.lxcfs",
];

/// A sample as metrics-flush takes it (the wire type is shared through `hub-core`).
pub type Sample = hub_core::wire::Sample<Map<String, Value>>;

/// What the sampler is told at start.
#[derive(Debug, Clone)]
pub struct SamplerOptions {
    /// Interface name prefixes to skip.
    pub excluded_interfaces: Vec<String>,
    /// Where sysfs is mounted (temperatures are read under it).
    pub sysfs: PathBuf,
    /// The `host` of every sample; the system's host name when unset.
    pub host: Option<String>,
}

#[derive(Debug)]
pub struct Sampler {
    system: System,
    disks: Disks,
    networks: NetworkSource,
    excluded_interfaces: Vec<String>,
    sysfs: PathBuf,
    host: String,
    os: String,
    /// Read once: they change only with an upgrade or a reboot, and either restarts the agent
    /// (`os` above was already fixed at start). Re-reading /etc/os-release each sample cost
    /// two file reads per sample for nothing.
    os_name: Option<String>,
    os_version: Option<String>,
    kernel: Option<String>,
}

/// Where interface counters come from.
#[derive(Debug)]
enum NetworkSource {
    /// Linux: `/proc/net/dev` (through `procfs`), one read for every interface. sysinfo's `Networks` reads nine
    /// sysfs files per interface (excluded ones too) plus a netlink address dump on every
    /// refresh: most of the file opens of a `--once` run, for values that are the same kernel
    /// counters (`dev_get_stats`) as the rx/tx bytes in `/proc/net/dev`.
    ProcNetDev,
    /// Elsewhere, or if `/proc/net/dev` cannot be read.
    Sysinfo(Networks),
}

/// Only what the sample uses: usage and storage, not disk kind (a sysfs read and a device
/// path walk per disk) nor I/O counters (`/proc/diskstats`), which nothing reports.
fn disk_refresh() -> DiskRefreshKind {
    DiskRefreshKind::nothing().with_storage()
}

impl Sampler {
    /// Creates the sampler without reading anything yet: the lists (disks, sensors,
    /// interfaces) are filled by the first `sample()`, so a `--once` run reads each of them
    /// once instead of once here and again in the sample. Only host and OS names are read.
    pub fn new(opts: SamplerOptions) -> Result<Self, sysinfo::Error> {
        // The old hub's fallback when the host name cannot be read.
        let host = opts
            .host
            .or_else(|| System::host_name().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "homelab".into());
        let os_name = System::name().ok();
        let os_version = System::os_version().ok();
        let os = platform_and_version(
            Some(System::distribution_id().as_str()),
            os_version.as_deref(),
            std::fs::read_to_string("/etc/debian_version")
                .ok()
                .as_deref(),
        );
        // Not probed here (that would be a read more per `--once`): the first failed read
        // switches to sysinfo.
        let networks = if cfg!(target_os = "linux") {
            NetworkSource::ProcNetDev
        } else {
            NetworkSource::Sysinfo(Networks::new()?)
        };
        Ok(Self {
            system: System::new()?,
            disks: Disks::new()?,
            networks,
            excluded_interfaces: opts.excluded_interfaces,
            sysfs: opts.sysfs,
            host,
            os,
            os_name,
            os_version,
            kernel: System::kernel_version().ok(),
        })
    }

    /// Takes the first CPU reading, so the next sample measures usage from here (`--once`
    /// waits sysinfo's minimum interval between the two). Usage only: the counters come from
    /// `/proc/stat`; frequencies would be one sysfs read per core.
    pub fn prime(&mut self) {
        self.system.refresh_cpu_usage();
    }

    /// One sample in the shapes the existing dashboards read (see the crate docs): `cpu`,
    /// `memory`, `disk` (mount → figures), `network` (interface → counters), plus `host`.
    pub fn sample(&mut self) -> Sample {
        self.system.refresh_cpu_usage();
        // RAM and swap, both reported: one read of /proc/meminfo either way.
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        self.disks.refresh_specifics(true, disk_refresh());

        let temps = hwmon::read(&self.sysfs);
        let nets = self.interfaces();
        let s = &self.system;
        let mut metrics = Map::new();
        let cores: Vec<f64> = s.cpus().iter().map(|c| round1(c.usage())).collect();
        metrics.insert(
            "cpu".into(),
            json!({
                "usage": round1(s.global_cpu_usage()),
                // The old hub wrote 0 and {} without sensors; the panels expect the keys.
                "package_temp": temps.package.unwrap_or(0.0),
                "core_temps": temps.cores,
                "cores": cores,
            }),
        );
        metrics.insert(
            "memory".into(),
            json!({
                "total": s.total_memory(), "available": s.available_memory(),
                "used": s.used_memory(),
                "used_percent": percent(s.used_memory(), s.total_memory()),
                "swap_total": s.total_swap(), "swap_used": s.used_swap(),
            }),
        );
        let disks: Map<String, Value> = self
            .disks
            .iter()
            .filter(|d| is_physical(d))
            .map(|d| (d.mount_point().display().to_string(), usage(d)))
            .collect();
        metrics.insert("disk".into(), Value::Object(disks));
        let nets: Map<String, Value> = nets
            .into_iter()
            .map(|(name, rx, tx)| (name, json!({"rx_bytes": rx, "tx_bytes": tx})))
            .collect();
        metrics.insert("network".into(), Value::Object(nets));
        metrics.insert(
            "host".into(),
            json!({
                "os_name": self.os_name,
                "os_version": self.os_version,
                "kernel": self.kernel,
                "uptime_secs": System::uptime().ok(),
            }),
        );
        Sample {
            // Whole seconds: (host, time) is the replay key, and the agent samples at most once
            // a second.
            time: Utc::now().trunc_subsecs(0),
            host: self.host.clone(),
            os: self.os.clone(),
            metrics,
        }
    }

    /// (interface, rx bytes, tx bytes) of the interfaces not excluded, sorted by name.
    fn interfaces(&mut self) -> Vec<(String, u64, u64)> {
        let excluded = &self.excluded_interfaces;
        let keep = |name: &str| !excluded.iter().any(|p| name.starts_with(p.as_str()));
        #[cfg(target_os = "linux")]
        if matches!(self.networks, NetworkSource::ProcNetDev) {
            match procfs::net::dev_status() {
                Ok(devices) => {
                    let mut nets: Vec<(String, u64, u64)> = devices
                        .into_values()
                        .filter(|d| keep(&d.name))
                        .map(|d| (d.name, d.recv_bytes, d.sent_bytes))
                        .collect();
                    nets.sort();
                    return nets;
                }
                Err(e) => match Networks::new() {
                    Ok(n) => {
                        tracing::warn!(error = %e, "cannot read /proc/net/dev; reading interfaces through sysinfo");
                        self.networks = NetworkSource::Sysinfo(n);
                    }
                    Err(e2) => {
                        tracing::warn!(error = %e, sysinfo = %e2, "cannot read interface counters; no network figures in this sample");
                        return Vec::new();
                    }
                },
            }
        }
        let NetworkSource::Sysinfo(networks) = &mut self.networks else {
            return Vec::new();
        };
        networks.refresh(true);
        let mut nets: Vec<(String, u64, u64)> = networks
            .iter()
            .map(|(name, data)| {
                (
                    name.to_string_lossy().into_owned(),
                    data.total_received(),
                    data.total_transmitted(),
                )
            })
            .filter(|(name, ..)| keep(name))
            .collect();
        nets.sort();
        nets
    }
}

/// `os` as the old hub wrote it: `"<platform> <version>"`, e.g. `debian 12.7` — Debian's point
/// release comes from `/etc/debian_version`, as gopsutil reads it.
fn platform_and_version(
    platform: Option<&str>,
    version: Option<&str>,
    debian_version: Option<&str>,
) -> String {
    let platform = platform
        .filter(|p| !p.is_empty())
        .unwrap_or(std::env::consts::OS);
    let debian = debian_version
        .map(str::trim)
        .filter(|v| platform == "debian" && v.starts_with(|c: char| c.is_ascii_digit()));
    match debian.or(version) {
        Some(v) if !v.is_empty() => format!("{platform} {v}"),
        _ => platform.to_owned(),
    }
}

/// A mount of real storage: a block device's filesystem, not a pseudo filesystem, and not the
/// boot partitions (the old hub skipped `/boot` and everything under it).
fn is_physical(d: &sysinfo::Disk) -> bool {
    let fs = d.file_system().to_string_lossy();
    let mount = d.mount_point();
    !PSEUDO_FILESYSTEMS.contains(&fs.as_ref())
        && d.total_space() > 0
        && d.name().to_string_lossy().starts_with("/dev/")
        && !mount.starts_with("/boot")
}

/// A mount's figures as df and the old hub (gopsutil) give them: `free` is what unprivileged
/// users may still write, `used` what is taken, and `used_percent` is of the two together, so
/// blocks reserved for root count in neither. sysinfo's figures are the fallback.
fn usage(d: &sysinfo::Disk) -> Value {
    let (total, used, free) = match nix::sys::statvfs::statvfs(d.mount_point()) {
        Ok(v) => {
            let unit = v.fragment_size();
            let total = v.blocks().saturating_mul(unit);
            let free = v.blocks_available().saturating_mul(unit);
            let used = v
                .blocks()
                .saturating_sub(v.blocks_free())
                .saturating_mul(unit);
            (total, used, free)
        }
        Err(_) => {
            let (total, free) = (d.total_space(), d.available_space());
            (total, total.saturating_sub(free), free)
        }
    };
    json!({"total": total, "used": used, "free": free,
           "used_percent": percent(used, used.saturating_add(free))})
}

/// `part` of `whole` in percent, one decimal; 0 for an empty whole.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 / whole as f64 * 1000.0).round() / 10.0
}

/// One decimal, computed in f64 so the JSON shows 84.2 rather than f32 noise.
fn round1(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_is_platform_and_version() {
        assert_eq!(
            platform_and_version(Some("debian"), Some("12"), Some("12.7\n")),
            "debian 12.7"
        );
        // Testing/unstable write a codename there.
        assert_eq!(
            platform_and_version(Some("debian"), Some("13"), Some("trixie/sid")),
            "debian 13"
        );
        assert_eq!(
            platform_and_version(Some("ubuntu"), Some("24.04"), Some("trixie/sid")),
            "ubuntu 24.04"
        );
        assert_eq!(platform_and_version(None, None, None), std::env::consts::OS);
    }

    #[test]
    fn percent_has_one_decimal() {
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(5, 0), 0.0);
    }

    /// The same counters as sysinfo reads from sysfs (interfaces idle enough that the two
    /// readings, taken back to back, agree within a little traffic).
    #[cfg(target_os = "linux")]
    #[test]
    fn proc_net_dev_agrees_with_sysinfo() {
        let ours: Vec<(String, u64, u64)> = procfs::net::dev_status()
            .expect("/proc/net/dev")
            .into_values()
            .map(|d| (d.name, d.recv_bytes, d.sent_bytes))
            .collect();
        let theirs = Networks::new_with_refreshed_list().expect("networks");
        assert_eq!(ours.len(), theirs.len(), "{ours:?}");
        for (name, rx, tx) in ours {
            let data = theirs
                .get(std::ffi::OsStr::new(&name))
                .unwrap_or_else(|| panic!("{name} unknown to sysinfo"));
            assert!(data.total_received().abs_diff(rx) < 1 << 20, "{name} rx");
            assert!(data.total_transmitted().abs_diff(tx) < 1 << 20, "{name} tx");
        }
    }
}
