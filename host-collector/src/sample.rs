//! One sample of this host, taken with `sysinfo`. The `Sampler` keeps its `System`, disk,
//! network and sensor lists between samples, so each sample only refreshes values (and CPU usage
//! is measured over the interval since the previous sample).

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value, json};
use sysinfo::{Components, Disks, Networks, System};

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

/// A sample as metrics-flush takes it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Sample {
    pub time: DateTime<Utc>,
    pub host: String,
    pub os: String,
    pub metrics: Map<String, Value>,
}

#[derive(Debug)]
pub struct Sampler {
    system: System,
    disks: Disks,
    networks: Networks,
    components: Option<Components>,
    excluded_interfaces: Vec<String>,
    host: String,
    os: String,
}

impl Sampler {
    pub fn new(excluded_interfaces: Vec<String>) -> Result<Self, sysinfo::Error> {
        let mut system = System::new()?;
        system.refresh_cpu_usage();
        let host = System::host_name().unwrap_or_else(|_| "unknown".into());
        let os = System::long_os_version()
            .or_else(|_| System::name())
            .unwrap_or_else(|_| std::env::consts::OS.into());
        Ok(Self {
            system,
            disks: Disks::new_with_refreshed_list()?,
            networks: Networks::new_with_refreshed_list()?,
            // Sensors are optional: a host without hwmon simply has no temperatures.
            components: Components::new_with_refreshed_list().ok(),
            excluded_interfaces,
            host,
            os,
        })
    }

    /// Refreshes CPU counters now, so the next sample measures usage from here (`--once`
    /// waits sysinfo's minimum interval between the two).
    pub fn prime(&mut self) {
        self.system.refresh_cpu_usage();
    }

    pub fn sample(&mut self) -> Sample {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.disks.refresh(true);
        self.networks.refresh(true);
        if let Some(c) = &mut self.components {
            c.refresh(true);
        }

        let temperature = self.temperatures();
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
        let mut nets: Vec<(String, u64, u64)> = self
            .networks
            .iter()
            .map(|(name, data)| {
                (
                    name.to_string_lossy().into_owned(),
                    data.total_received(),
                    data.total_transmitted(),
                )
            })
            .filter(|(name, ..)| {
                !self
                    .excluded_interfaces
                    .iter()
                    .any(|p| name.starts_with(p.as_str()))
            })
            .collect();
        nets.sort();
        let nets: Vec<Value> = nets
            .into_iter()
            .map(|(name, rx, tx)| json!({"interface": name, "rx_bytes": rx, "tx_bytes": tx}))
            .collect();
        metrics.insert("network".into(), Value::Array(nets));
        metrics.insert(
            "host".into(),
            json!({
                "os_name": System::name().ok(),
                "os_version": System::os_version().ok(),
                "kernel": System::kernel_version().ok(),
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

/// One decimal, computed in f64 so the JSON shows 84.2 rather than f32 noise.
fn round1(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}
