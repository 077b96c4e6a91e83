//! gate-check's settings, read once at start.

use hub_runtime::{ConfigError, Source};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_SOCKET: &str = "/var/run/tailscale/tailscaled.sock";
/// The ports Tailscale lets Funnel listen on.
pub const FUNNEL_PORTS: [u16; 3] = [443, 8443, 10000];

/// What decides whether the gateway is healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The gateway's own readiness, in process, and a connection to its public listener.
    InProcess,
    /// `GATE_HEALTH_URL`: healthy on a 2xx within the timeout (redirects are not followed).
    Url(String),
    /// `GATE_UNIT`: healthy when `systemctl is-active UNIT` says `active`, like the old script.
    Unit(String),
}

#[derive(Debug, Clone)]
pub struct GateConfig {
    pub socket: PathBuf,
    pub probe: Probe,
    /// Bound on each probe and each LocalAPI call (`GATE_TIMEOUT_SECS`, 5).
    pub timeout: Duration,
    pub open_after: u32,
    pub close_after: u32,
    pub funnel_port: u16,
    /// `GATE_FUNNEL_HOST`; else the node's MagicDNS name from the LocalAPI.
    pub funnel_host: Option<String>,
    /// The `systemctl` a unit probe runs (`GATE_SYSTEMCTL`, from `PATH`).
    pub systemctl: PathBuf,
}

fn invalid(setting: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        message,
    }
}

/// A unit name goes to systemctl as an argument: refuse anything that could read as an option
/// or is not a unit name at all.
fn check_unit(unit: &str) -> Result<(), ConfigError> {
    let ok = !unit.starts_with('-')
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._:-\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid("GATE_UNIT", format!("{unit:?} is not a unit name")))
    }
}

impl GateConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let url: Option<String> = src.get("gate_check.health_url", "GATE_HEALTH_URL")?;
        let unit: Option<String> = src.get("gate_check.unit", "GATE_UNIT")?;
        let probe = match (url, unit) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "GATE_HEALTH_URL, GATE_UNIT",
                    "set one of them, not both".into(),
                ));
            }
            (Some(url), None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(
                        "GATE_HEALTH_URL",
                        format!("{url:?} is not http(s)"),
                    ));
                }
                Probe::Url(url)
            }
            (None, Some(unit)) => {
                check_unit(&unit)?;
                Probe::Unit(unit)
            }
            (None, None) => Probe::InProcess,
        };
        let at_least_one = |env: &str, v: u32| {
            if v == 0 {
                Err(invalid(env, "must be at least 1".into()))
            } else {
                Ok(v)
            }
        };
        let funnel_port = src.get_or("gate_check.funnel_port", "GATE_FUNNEL_PORT", 443)?;
        if !FUNNEL_PORTS.contains(&funnel_port) {
            return Err(invalid(
                "GATE_FUNNEL_PORT",
                format!("{funnel_port}: Funnel listens only on 443, 8443 or 10000"),
            ));
        }
        let timeout = src.seconds_or("gate_check.timeout_secs", "GATE_TIMEOUT_SECS", 5)?;
        if timeout.is_zero() {
            return Err(invalid("GATE_TIMEOUT_SECS", "must be at least 1".into()));
        }
        Ok(Self {
            socket: src.get_or(
                "gate_check.socket",
                "TAILSCALE_SOCKET",
                PathBuf::from(DEFAULT_SOCKET),
            )?,
            probe,
            timeout,
            open_after: at_least_one(
                "GATE_OPEN_AFTER",
                src.get_or("gate_check.open_after", "GATE_OPEN_AFTER", 2)?,
            )?,
            close_after: at_least_one(
                "GATE_CLOSE_AFTER",
                src.get_or("gate_check.close_after", "GATE_CLOSE_AFTER", 1)?,
            )?,
            funnel_port,
            funnel_host: src.get("gate_check.funnel_host", "GATE_FUNNEL_HOST")?,
            systemctl: src.get_or(
                "gate_check.systemctl",
                "GATE_SYSTEMCTL",
                PathBuf::from("systemctl"),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<GateConfig, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        GateConfig::from_source(&Source::from_parts(None, env).expect("source"))
    }

    #[test]
    fn defaults_follow_the_issue() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.probe, Probe::InProcess);
        assert_eq!((c.open_after, c.close_after, c.funnel_port), (2, 1, 443));
        assert_eq!(c.timeout, Duration::from_secs(5));
    }

    #[test]
    fn refuses_what_would_misbehave_later() {
        for (pairs, why) in [
            (&[("GATE_FUNNEL_PORT", "8080")][..], "not a Funnel port"),
            (&[("GATE_OPEN_AFTER", "0")][..], "opens without a check"),
            (&[("GATE_CLOSE_AFTER", "0")][..], "never closes"),
            (&[("GATE_UNIT", "--root=/")][..], "an option, not a unit"),
            (&[("GATE_UNIT", "a b")][..], "not a unit name"),
            (&[("GATE_HEALTH_URL", "file:///etc/passwd")][..], "not http"),
            (
                &[("GATE_HEALTH_URL", "http://x/"), ("GATE_UNIT", "x.service")][..],
                "two probes",
            ),
            (&[("GATE_TIMEOUT_SECS", "0")][..], "no time to answer"),
        ] {
            assert!(cfg(pairs).is_err(), "{why}: {pairs:?}");
        }
        assert_eq!(
            cfg(&[("GATE_UNIT", "hub-gateway.service")])
                .expect("unit")
                .probe,
            Probe::Unit("hub-gateway.service".into())
        );
    }
}
