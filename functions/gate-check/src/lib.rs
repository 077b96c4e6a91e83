//! # gate-check
//!
//! Keeps Tailscale Funnel open to the gateway's public routes while the gateway is healthy and
//! closes it when not. **Fail closed**: a probe that errs, times out or answers something
//! unknown, an unreadable state, or a gateway that has not published its public listener all
//! count as unhealthy.
//!
//! **Each check** (schedule `*/30 * * * * *`): probe health — the gateway's own readiness in
//! process plus a connection to its public listener, or `GATE_HEALTH_URL` (a 2xx within
//! `GATE_TIMEOUT_SECS`), or `GATE_UNIT` (`systemctl is-active`); count it (open after
//! `GATE_OPEN_AFTER` consecutive healthy checks, close after `GATE_CLOSE_AFTER` unhealthy
//! ones); then read the live ServeConfig from tailscaled's LocalAPI and write it back (with
//! `If-Match`; a 412 means re-read and merge again) only on a transition or when it drifted
//! from what the gate expects (after a `tailscale funnel reset`, say). Every change is
//! recorded: the run's summary says before/after, and the state keeps the last 20 changes
//! with both configs. State (open/closed, streaks, since, what was published, changes) lives
//! in the store's `gate_check_state` table, so a restart resumes where it was.
//!
//! **Open** adds `{"Proxy": "http://127.0.0.1:<public port><path>"}` under
//! `Web["<host>:<port>"].Handlers[<path>]` for each public path, `TCP["<port>"] =
//! {"HTTPS": true}` and `AllowFunnel["<host>:<port>"] = true`. **Close** removes exactly the
//! hub's handlers (recognised by mount *and* proxy URL) and the `AllowFunnel` entry of the
//! hub's host:port — Funnel on that host:port is the gate's to decide — and leaves every other
//! entry alone; the TCP port goes only when no site uses it any more. A foreign handler on a
//! hub mount, or a non-HTTPS use of the funnel port, is a conflict: the gate refuses to open
//! rather than overwrite it. `<host>` is `GATE_FUNNEL_HOST`, else the node's MagicDNS name
//! (`Self.DNSName` of the LocalAPI status). JSON shapes are pinned to Tailscale v1.88 (see
//! [`localapi`]); the LocalAPI is not a stable API.
//!
//! **Shutdown:** [`Function::stop`] closes the funnel before the gateway exits (a run with
//! trigger `shutdown`); the gate reopens after `GATE_OPEN_AFTER` healthy checks of the next
//! start. **Metrics:** `hub_gate_open` (0/1), `hub_gate_transitions_total{to}`.
//!
//! **Routes** (operator): `GET /api/gate` (state, since, streaks, last changes),
//! `POST /api/gate/check` (one check now). **Not configured** where the tailscaled socket
//! (`TAILSCALE_SOCKET`, default `/var/run/tailscale/tailscaled.sock`) is absent, and on Lambda.
//!
//! **Environment:** `TAILSCALE_SOCKET`, `GATE_HEALTH_URL`, `GATE_UNIT`, `GATE_SYSTEMCTL`
//! (`systemctl`), `GATE_TIMEOUT_SECS` (5), `GATE_OPEN_AFTER` (2), `GATE_CLOSE_AFTER` (1),
//! `GATE_FUNNEL_PORT` (443; 8443 or 10000), `GATE_FUNNEL_HOST`; `hub.toml` keys under
//! `[gate_check]`.
//!
//! The gateway fills [`hub_runtime::Context::edge`] (public port, public paths, readiness)
//! once its public listener is bound; until then the gate stays closed and says why.

mod check;
pub mod config;
pub mod health;
pub mod localapi;
mod panel;
mod routes;
pub mod serve_config;
pub mod state;

pub use check::{Checked, GateError};
pub use config::GateConfig;

use futures::FutureExt;
use futures::future::BoxFuture;
use hub_runtime::store::Tables;
use hub_runtime::{
    ConfigError, Context, Edge, Function, InvokeError, Registration, Report, Routes, Runs, Trigger,
};
use localapi::LocalApi;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

pub const NAME: &str = "gate-check";
pub const STATUS_PATH: &str = "/api/gate";
pub const CHECK_PATH: &str = "/api/gate/check";
pub const DEFAULT_SCHEDULE: &str = "*/30 * * * * *";

pub const REGISTRATION: Registration = Registration {
    name: NAME,
    env_help: ENV_HELP,
    build: |ctx| Ok(Arc::new(Gate::from_context(&ctx)?)),
};

const ENV_HELP: &str = "\
gate-check (schedule */30 * * * * *):
  TAILSCALE_SOCKET     tailscaled's LocalAPI socket (default /var/run/tailscale/tailscaled.sock);
                       absent: not configured
  GATE_HEALTH_URL      probe this URL (2xx = healthy) instead of the gateway's own readiness
  GATE_UNIT            probe `systemctl is-active UNIT` instead (GATE_SYSTEMCTL: the binary)
  GATE_TIMEOUT_SECS    bound on each probe and LocalAPI call (default 5)
  GATE_OPEN_AFTER      consecutive healthy checks before Funnel opens (default 2)
  GATE_CLOSE_AFTER     consecutive unhealthy checks before it closes (default 1)
  GATE_FUNNEL_PORT     443, 8443 or 10000 (default 443)
  GATE_FUNNEL_HOST     the funnel's host name (default: the node's MagicDNS name)";

/// The function.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: GateConfig,
    api: LocalApi,
    tables: Tables,
    edge: Arc<OnceLock<Edge>>,
    metrics: hub_runtime::metrics::Metrics,
    runs: Runs,
    http: reqwest::Client,
    on_lambda: bool,
    /// One check (or the shutdown close) at a time: each reads, decides and writes the state.
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub fn from_context(ctx: &Context) -> Result<Self, ConfigError> {
        let cfg = GateConfig::from_source(&ctx.source)?;
        Ok(Self {
            inner: Arc::new(Inner {
                api: LocalApi::new(cfg.socket.clone(), cfg.timeout),
                http: health::http_client(cfg.timeout),
                cfg,
                tables: Tables::new(ctx.store.clone(), "gate_check_state", |s| {
                    Box::pin(state::ensure_schema(s))
                }),
                edge: ctx.edge.clone(),
                metrics: ctx.runs.metrics().clone(),
                runs: ctx.runs.clone(),
                on_lambda: ctx.http_trigger == Trigger::Lambda,
                turn: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn config(&self) -> &GateConfig {
        &self.inner.cfg
    }

    /// The stored state (for the routes and the panel).
    pub async fn state(&self) -> Result<state::GateState, GateError> {
        let store = self
            .inner
            .tables
            .store()
            .await
            .map_err(state::StateError::from)?;
        Ok(state::load(store).await?)
    }
}

impl Function for Gate {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(&self) -> Routes {
        routes::table(self)
    }

    fn schedule(&self) -> Option<&str> {
        Some(DEFAULT_SCHEDULE)
    }

    fn configured(&self) -> Result<(), String> {
        if self.inner.on_lambda {
            return Err("there is no tailscaled on Lambda; gate-check runs on the host".into());
        }
        let socket = self.inner.api.socket();
        if socket.exists() {
            Ok(())
        } else {
            Err(format!(
                "no tailscaled socket at {} (TAILSCALE_SOCKET)",
                socket.display()
            ))
        }
    }

    /// tailscaled answers and is logged in and running; the gate's table can be written.
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            self.inner.tables.ready().await?;
            let status = self.inner.api.status().await.map_err(|e| e.to_string())?;
            if status.backend_state == "Running" {
                Ok(())
            } else {
                Err(format!("tailscaled is {}", status.backend_state))
            }
        }
        .boxed()
    }

    /// The gauge from the stored state, so it is right from the first scrape.
    fn start(&self) -> BoxFuture<'_, ()> {
        async move {
            match self.state().await {
                Ok(st) => self.inner.metrics.gate_state(st.open),
                Err(e) => {
                    tracing::warn!(function = NAME, error = %e, "cannot read the gate state");
                    self.inner.metrics.gate_state(false);
                }
            }
        }
        .boxed()
    }

    /// Closes the funnel, recorded as a run with trigger `shutdown`.
    fn stop(&self) -> BoxFuture<'_, ()> {
        async move {
            let work = async {
                self.close_now("gateway shutting down")
                    .await
                    .map(Report::success)
            };
            let runs = self.inner.runs.clone();
            if let Err(e) = runs.track(NAME, Trigger::Shutdown, work).await {
                tracing::error!(function = NAME, error = %e, "cannot close the funnel at shutdown");
            }
        }
        .boxed()
    }

    fn status_panel(&self) -> BoxFuture<'_, Option<String>> {
        async move { Some(panel::render(self).await) }.boxed()
    }

    fn invoke(
        &self,
        _trigger: Trigger,
        input: Value,
    ) -> BoxFuture<'_, Result<Report, InvokeError>> {
        async move {
            match &input {
                Value::Object(o) if o.is_empty() => {}
                Value::Null => {}
                _ => {
                    return Err(InvokeError::BadInput(
                        "gate-check takes no input: {}".into(),
                    ));
                }
            }
            self.configured().map_err(InvokeError::NotConfigured)?;
            self.check()
                .await
                .map(|c| Report::success(c.summary))
                .map_err(|e| InvokeError::Failed(e.to_string()))
        }
        .boxed()
    }
}
