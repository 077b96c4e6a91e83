//! One health probe of the gateway. Fail closed: every error, timeout or answer the probe does
//! not recognise is "unhealthy", with the reason.

use crate::config::{GateConfig, Probe};
use hub_runtime::Edge;
use std::time::Duration;

/// The verdict of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    pub reason: String,
}

impl Health {
    fn ok(reason: impl Into<String>) -> Self {
        Self {
            healthy: true,
            reason: reason.into(),
        }
    }
    fn bad(reason: impl Into<String>) -> Self {
        Self {
            healthy: false,
            reason: reason.into(),
        }
    }
}

/// Probes per `cfg.probe`, the whole probe bounded by `cfg.timeout`.
pub async fn probe(cfg: &GateConfig, edge: Option<&Edge>, http: &reqwest::Client) -> Health {
    let work = async {
        match &cfg.probe {
            Probe::InProcess => in_process(edge).await,
            Probe::Url(url) => by_url(http, url).await,
            Probe::Unit(unit) => by_unit(cfg, unit).await,
        }
    };
    match tokio::time::timeout(cfg.timeout, work).await {
        Ok(health) => health,
        Err(_) => Health::bad(format!("health probe timed out after {:?}", cfg.timeout)),
    }
}

async fn in_process(edge: Option<&Edge>) -> Health {
    let Some(edge) = edge else {
        return Health::bad("the gateway has not published its public listener yet");
    };
    if let Err(reason) = (edge.ready)().await {
        return Health::bad(format!("gateway not ready: {reason}"));
    }
    // What Funnel will proxy to must accept connections, not only exist in the config.
    match tokio::net::TcpStream::connect(("127.0.0.1", edge.public_port)).await {
        Ok(_) => Health::ok(format!(
            "ready; public listener on {} answers",
            edge.public_port
        )),
        Err(e) => Health::bad(format!(
            "public listener 127.0.0.1:{} refuses connections: {e}",
            edge.public_port
        )),
    }
}

async fn by_url(http: &reqwest::Client, url: &str) -> Health {
    match http.get(url).send().await {
        Ok(r) if r.status().is_success() => Health::ok(format!("{url} answered {}", r.status())),
        Ok(r) => Health::bad(format!("{url} answered {}", r.status())),
        Err(e) if e.is_timeout() => Health::bad(format!("{url} timed out")),
        Err(e) => Health::bad(format!("{url} failed: {e}")),
    }
}

/// `systemctl is-active -- UNIT`: `active` (exit 0) is healthy; `activating`, `inactive`,
/// `failed`, anything else or no answer is not.
async fn by_unit(cfg: &GateConfig, unit: &str) -> Health {
    let out = tokio::process::Command::new(&cfg.systemctl)
        .args(["is-active", "--", unit])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) => {
            let said = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if o.status.success() && said == "active" {
                Health::ok(format!("{unit} is active"))
            } else {
                Health::bad(format!("{unit} is {:?} ({})", said, o.status))
            }
        }
        Err(e) => Health::bad(format!("cannot run {}: {e}", cfg.systemctl.display())),
    }
}

/// The client a URL probe uses: no redirects (a 3xx is not health), the probe's timeout.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}
