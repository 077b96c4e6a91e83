//! One sample of this host, taken with `sysinfo` (interface counters on Linux from
//! `/proc/net/dev`, see `NetworkSource`). The `Sampler` keeps its `System`, disk and sensor lists
//! between samples, so each sample only refreshes values (and CPU usage is measured over the
//! interval since the previous sample). Each refresh asks only for what the sample reports: a
//! `--once` run is mostly process start plus these reads, so every file read counts.

use chrono::{SubsecRound, Utc};
use serde_json::{Map, Value, json};
use sysinfo::{Components, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, System};

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

#[derive(Debug)]
pub struct Sampler {
    system: System,
    disks: Disks,
    networks: NetworkSource,
    components: Option<Components>,
    excluded_interfaces: Vec<String>,
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
    pub fn new(excluded_interfaces: Vec<String>) -> Result<Self, sysinfo::Error> {
        let host = System::host_name().unwrap_or_else(|_| "unknown".into());
        let os_name = System::name().ok();
        let os_version = System::os_version().ok();
        let os = long_os_version(os_name.as_deref(), os_version.as_deref());
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
            // Sensors are optional: a host without hwmon simply has no temperatures.
            components: Components::new().ok(),
            excluded_interfaces,
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

    pub fn sample(&mut self) -> Sample {
        self.system.refresh_cpu_usage();
        // RAM and swap, both reported: one read of /proc/meminfo either way.
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        self.disks.refresh_specifics(true, disk_refresh());
        if let Some(c) = &mut self.components {
            c.refresh(true);
        }

        let temperature = self.temperatures();
        let nets = self.interfaces();
        let s = &self.system;
        let mut metrics = Map::new();
        let cores: Vec<f64> = s.cpus().iter().map(|c| round1(c.usage())).collect();
        metrics.insert(
            "cpu".into(),
            json!({"total": round1(s.global_cpu_usage()), "cores": cores}),
        );
        if let Some(t) = temperature {
            metrics.insert("temperature".into(), t);
        }
        metrics.insert(
            "memory".into(),
            json!({
                "total": s.total_memory(), "used": s.used_memory(), "available": s.available_memory(),
                "swap_total": s.total_swap(), "swap_used": s.used_swap(),
            }),
        );
        let disks: Vec<Value> = self
            .disks
            .iter()
            .filter(|d| {
                let fs = d.file_system().to_string_lossy();
                !PSEUDO_FILESYSTEMS.contains(&fs.as_ref()) && d.total_space() > 0
            })
            .map(|d| {
                json!({
                    "mount": d.mount_point().display().to_string(),
                    "fs": d.file_system().to_string_lossy(),
                    "total": d.total_space(),
                    "used": d.total_space().saturating_sub(d.available_space()),
                    "free": d.available_space(),
                })
            })
            .collect();
        metrics.insert("disk".into(), Value::Array(disks));
        let nets: Vec<Value> = nets
            .into_iter()
            .map(|(name, rx, tx)| json!({"interface": name, "rx_bytes": rx, "tx_bytes": tx}))
            .collect();
        metrics.insert("network".into(), Value::Array(nets));
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

    /// Per-core and package temperatures from hwmon (`coretemp`, `k10temp`), if exposed.
    fn temperatures(&self) -> Option<Value> {
        let mut cores = Vec::new();
        let mut package = None;
        for c in self.components.iter().flat_map(|c| c.iter()) {
            let Some(t) = c.temperature().filter(|t| t.is_finite()) else {
                continue;
            };
            let label = c.label();
            let lower = label.to_lowercase();
            if lower.contains("package") || lower.contains("tctl") || lower.contains("tdie") {
                package = Some(round1(t));
            } else if lower.contains("core") {
                cores.push(json!({"label": label, "celsius": round1(t)}));
            }
        }
        (package.is_some() || !cores.is_empty())
            .then(|| json!({"package": package, "cores": cores}))
    }
}

/// sysinfo's `long_os_version()` ("Linux (Debian GNU/Linux 12)") built from the name and
/// version already read, instead of reading /etc/os-release twice more. Other systems compose it
/// differently, so there sysinfo is asked.
fn long_os_version(name: Option<&str>, version: Option<&str>) -> String {
    if cfg!(target_os = "linux") {
        match (name, version) {
            (name, Some(version)) => format!("Linux ({} {version})", name.unwrap_or("unknown")),
            (Some(name), None) => format!("Linux ({name})"),
            (None, None) => "Linux".into(),
        }
    } else {
        System::long_os_version()
            .or_else(|_| System::name())
            .unwrap_or_else(|_| std::env::consts::OS.into())
    }
}

/// One decimal, computed in f64 so the JSON shows 84.2 rather than f32 noise.
fn round1(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn long_os_version_matches_sysinfo() {
        let name = System::name().ok();
        let version = System::os_version().ok();
        assert_eq!(
            long_os_version(name.as_deref(), version.as_deref()),
            System::long_os_version().expect("long_os_version")
        );
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
