//! CPU temperatures from the kernel's hwmon interface, read straight from sysfs under a root
//! that tests can point elsewhere (`HUB_COLLECTOR_SYSFS`, default `/sys`): CI machines have no
//! sensors, and the dashboards' temperature panel must still be exercised for real.
//!
//! Drivers read: `coretemp` (Intel: `Package id N`, `Core N`) and `k10temp` / `zenpower` (AMD:
//! `Tctl`, `Tdie`, which stand for the package). Each `tempK_input` holds millidegrees Celsius
//! next to its `tempK_label`.

use serde_json::{Map, Value};
use std::path::Path;

/// What the dashboards read: the package temperature and `core_N` per core.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuTemps {
    /// °C; the hottest package when there are several.
    pub package: Option<f64>,
    /// `core_N` → whole °C, as the old hub wrote them (the panel casts them to `int`). Cores
    /// of a second package continue the numbering the kernel gives them.
    pub cores: Map<String, Value>,
}

const PACKAGE_DRIVERS: &[&str] = &["k10temp", "zenpower"];

/// Reads every hwmon device under `<sysfs>/class/hwmon`. A missing tree, unreadable files or
/// values that are not numbers leave the figures out; they never fail a sample.
pub fn read(sysfs: &Path) -> CpuTemps {
    let mut temps = CpuTemps::default();
    let Ok(devices) = std::fs::read_dir(sysfs.join("class/hwmon")) else {
        return temps;
    };
    let mut devices: Vec<_> = devices.filter_map(Result::ok).map(|d| d.path()).collect();
    devices.sort();
    for dev in devices {
        let driver = read_trimmed(&dev.join("name")).unwrap_or_default();
        if driver != "coretemp" && !PACKAGE_DRIVERS.contains(&driver.as_str()) {
            continue;
        }
        for (label, celsius) in sensors(&dev) {
            if let Some(n) = label.strip_prefix("Core ").and_then(number) {
                temps
                    .cores
                    .insert(format!("core_{n}"), Value::from(celsius.round() as i64));
            } else if label.starts_with("Package id ")
                || (PACKAGE_DRIVERS.contains(&driver.as_str())
                    && matches!(label.as_str(), "Tctl" | "Tdie"))
            {
                let t = (celsius * 10.0).round() / 10.0;
                temps.package = Some(temps.package.map_or(t, |p: f64| p.max(t)));
            }
        }
    }
    temps
}

/// (label, °C) of each `tempK_input` of one device, in K order.
fn sensors(dev: &Path) -> Vec<(String, f64)> {
    let Ok(entries) = std::fs::read_dir(dev) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, String, f64)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let k = number(name.strip_prefix("temp")?.strip_suffix("_input")?)?;
            let milli: f64 = read_trimmed(&e.path())?.parse().ok()?;
            let label = read_trimmed(&dev.join(format!("temp{k}_label")))
                .unwrap_or_else(|| format!("temp{k}"));
            (milli.is_finite()).then_some((k, label, milli / 1000.0))
        })
        .collect();
    found.sort_by_key(|(k, ..)| *k);
    found.into_iter().map(|(_, l, c)| (l, c)).collect()
}

fn number(s: &str) -> Option<u32> {
    s.parse().ok()
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn device(root: &Path, name: &str, driver: &str, sensors: &[(u32, &str, &str)]) {
        let dev = root.join("class/hwmon").join(name);
        std::fs::create_dir_all(&dev).expect("hwmon dir");
        std::fs::write(dev.join("name"), format!("{driver}\n")).expect("name");
        for (k, label, milli) in sensors {
            std::fs::write(dev.join(format!("temp{k}_label")), label).expect("label");
            std::fs::write(dev.join(format!("temp{k}_input")), milli).expect("input");
        }
    }

    #[test]
    fn coretemp_package_and_cores() {
        let root = tempfile::TempDir::new().expect("root");
        device(
            root.path(),
            "hwmon1",
            "coretemp",
            &[
                (1, "Package id 0", "52000\n"),
                (2, "Core 0", "48500"),
                (3, "Core 1", "51000"),
                (10, "Core 8", "45000"),
                (4, "Core 2", "not a number"),
            ],
        );
        // Other drivers (a disk, an ACPI zone) are not CPU temperatures.
        device(root.path(), "hwmon0", "nvme", &[(1, "Composite", "39850")]);
        let t = read(root.path());
        assert_eq!(t.package, Some(52.0));
        assert_eq!(
            Value::Object(t.cores),
            json!({"core_0": 49, "core_1": 51, "core_8": 45})
        );
    }

    #[test]
    fn amd_tctl_is_the_package_and_no_sensors_is_nothing() {
        let root = tempfile::TempDir::new().expect("root");
        assert_eq!(read(root.path()), CpuTemps::default());
        device(root.path(), "hwmon2", "k10temp", &[(1, "Tctl", "61375")]);
        let t = read(root.path());
        assert_eq!((t.package, t.cores.len()), (Some(61.4), 0));
    }
}
