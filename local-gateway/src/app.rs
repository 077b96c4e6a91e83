//! The gateway: the list of functions, building them, and serving with graceful shutdown. Its
//! HTTP surface is in [`crate::api`], the status page in [`crate::pages`].

use crate::edge::{Listeners, OperatorAccess};
use crate::scheduler::{self, Plan, Scheduler};
use crate::server::{self, ConnLimits};
use hub_runtime::store::StoreError;
use hub_runtime::{ConfigError, Context, Function, HubConfig, Registration, Source, Trigger};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub const SERVICE: &str = "hub-gateway";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "refusing to serve operator routes (status page, run history, triggers) on {addr} without \
         credentials: set HUB_OPERATOR_TOKEN (or HUB_OPERATOR_TOKEN_FILE), keep HUB_BIND on a \
         loopback address such as 127.0.0.1, or set HUB_OPERATOR_ANONYMOUS=true to serve them \
         to anyone who can reach {addr}"
    )]
    Exposed { addr: SocketAddr },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("cannot start the scheduler: {0}")]
    Scheduler(#[from] tokio_cron_scheduler::JobSchedulerError),
}

/// Settings of the gateway process itself.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `HUB_BIND` (default 127.0.0.1): the operator listener, serving every route. Beyond
    /// loopback it needs `HUB_OPERATOR_TOKEN` or `HUB_OPERATOR_ANONYMOUS=true` (see
    /// [`crate::edge`]).
    pub bind: IpAddr,
    /// `PORT` (default 8085).
    pub port: u16,
    /// `HUB_PUBLIC_BIND` (default 127.0.0.1): the public listener, serving the public routes
    /// alone; Tailscale Funnel points at it.
    pub public_bind: IpAddr,
    /// `HUB_PUBLIC_PORT` (default 8086; 0 picks a free port).
    pub public_port: u16,
    /// `HUB_OPERATOR_TOKEN` and `HUB_OPERATOR_ANONYMOUS`.
    pub operator: OperatorAccess,
    /// `HUB_SHUTDOWN_GRACE_SECS` (default 30): the whole shutdown fits in it. Running work gets
    /// it less a wind-down (a quarter, at most 5 s), then is interrupted and records how far it
    /// got.
    pub shutdown_grace: Duration,
    /// `HUB_CATCHUP_DELAY_SECS` (default 5): pause between start and a catch-up run, so a
    /// gateway in a restart loop does not hammer its dependencies.
    pub catch_up_delay: Duration,
    /// `HUB_RUN_RETENTION_DAYS` (default 30; 0 keeps everything): how long run history and
    /// claimed schedule ticks are kept.
    pub run_retention: Option<Duration>,
    /// `HUB_PRUNE_INTERVAL_SECS` (default 3600): how often old history is pruned.
    pub prune_interval: Duration,
    /// `HUB_HEADER_TIMEOUT_SECS` (default 10) and `HUB_MAX_CONNECTIONS` (default 1024); see
    /// [`crate::server`].
    pub conn_limits: ConnLimits,
}

impl GatewayConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            bind: src.get_or("gateway.bind", "HUB_BIND", IpAddr::from([127, 0, 0, 1]))?,
            port: src.get_or("gateway.port", "PORT", 8085)?,
            public_bind: src.get_or(
                "gateway.public_bind",
                "HUB_PUBLIC_BIND",
                IpAddr::from([127, 0, 0, 1]),
            )?,
            public_port: src.get_or("gateway.public_port", "HUB_PUBLIC_PORT", 8086)?,
            operator: OperatorAccess::from_source(src)?,
            shutdown_grace: src.seconds_or(
                "gateway.shutdown_grace_secs",
                "HUB_SHUTDOWN_GRACE_SECS",
                30,
            )?,
            catch_up_delay: src.seconds_or(
                "gateway.catch_up_delay_secs",
                "HUB_CATCHUP_DELAY_SECS",
                5,
            )?,
            run_retention: Some(src.get_or(
                "gateway.run_retention_days",
                "HUB_RUN_RETENTION_DAYS",
                30u64,
            )?)
            .filter(|days| *days > 0)
            .map(|days| Duration::from_secs(days.saturating_mul(24 * 3600))),
            prune_interval: src
                .seconds_or(
                    "gateway.prune_interval_secs",
                    "HUB_PRUNE_INTERVAL_SECS",
                    3600,
                )?
                .max(Duration::from_secs(1)),
            conn_limits: ConnLimits {
                header_timeout: src
                    .seconds_or("gateway.header_timeout_secs", "HUB_HEADER_TIMEOUT_SECS", 10)?
                    .max(Duration::from_secs(1)),
                max_connections: src
                    .get_or("gateway.max_connections", "HUB_MAX_CONNECTIONS", 1024usize)?
                    .max(1),
            },
        })
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    pub fn public_addr(&self) -> SocketAddr {
        SocketAddr::new(self.public_bind, self.public_port)
    }
}

/// Every function the hub ships. Adding a function is one line here (and its crate as a
/// dependency of this one); routes, `/api/functions`, `--help` and the scheduler follow.
pub const FUNCTIONS: &[Registration] = &[
    webhook_gitops::REGISTRATION,
    metrics_flush::REGISTRATION,
    reading_sync::REGISTRATION,
    minio_backup::REGISTRATION,
    gate_check::REGISTRATION,
    second_brain::REGISTRATION,
];

/// Every function the hub ships, built from one context.
pub fn functions(ctx: &Context) -> Result<Vec<Arc<dyn Function>>, ConfigError> {
    FUNCTIONS.iter().map(|r| (r.build)(ctx.clone())).collect()
}

/// A configured gateway, ready to serve or to invoke a function.
#[derive(Clone)]
pub struct Gateway {
    pub config: GatewayConfig,
    pub ctx: Context,
    pub functions: Arc<Vec<Arc<dyn Function>>>,
    /// Effective schedules (after overrides), validated at start.
    pub plans: Arc<Vec<Plan>>,
    /// Each function's routes as `/api/functions` lists them, in the order of `functions`:
    /// taken once, since describing routes builds the function's Router.
    pub(crate) route_infos: Arc<Vec<Vec<hub_runtime::RouteInfo>>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .field(
                "functions",
                &self.functions.iter().map(|f| f.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Loads config, opens (and migrates) the store and builds every function.
    pub async fn new(source: Source) -> Result<Self, StartError> {
        Self::with_functions(source, functions).await
    }

    /// Like [`Gateway::new`] with another list of functions (tests, embedding).
    pub async fn with_functions(
        source: Source,
        build: impl FnOnce(&Context) -> Result<Vec<Arc<dyn Function>>, ConfigError>,
    ) -> Result<Self, StartError> {
        let source = source.with_openbao().await?;
        let config = GatewayConfig::from_source(&source)?;
        let hub = HubConfig::from_source(&source)?;
        let store = hub_runtime::Store::connect(&hub).await?;
        let ctx = Context::new(source, hub, store, Trigger::Http);
        let functions = build(&ctx)?;
        for f in &functions {
            ctx.runs.metrics().register_function(f.name());
        }
        let plans = scheduler::plans(&ctx.source, &functions)?;
        Ok(Self {
            config,
            ctx,
            route_infos: Arc::new(
                functions
                    .iter()
                    .map(|f| f.routes().infos().to_vec())
                    .collect(),
            ),
            functions: Arc::new(functions),
            plans: Arc::new(plans),
        })
    }

    pub fn function(&self, name: &str) -> Option<&Arc<dyn Function>> {
        self.functions.iter().find(|f| f.name() == name)
    }

    /// Serves on `listeners` (a lone `TcpListener` is the operator listener without a public
    /// one) until `shutdown` resolves, then finishes in-flight requests on both and waits (up
    /// to the grace period) for background work such as running syncs.
    pub async fn serve(
        self,
        listeners: impl Into<Listeners>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Listeners {
            operator: listener,
            public,
        } = listeners.into();
        let addr = listener.local_addr().map_err(StartError::Serve)?;
        // Checked on the socket itself too: callers may bind their own.
        self.config.operator.check_exposure(addr)?;
        let public_addr = match &public {
            Some(l) => Some(l.local_addr().map_err(StartError::Serve)?),
            None => None,
        };
        let scheduler = if self.plans.is_empty() {
            None
        } else {
            Some(
                Scheduler::start(
                    &self.ctx,
                    &self.functions,
                    &self.plans,
                    self.config.catch_up_delay,
                )
                .await?,
            )
        };
        let pruner = self.config.run_retention.map(|keep| {
            tokio::spawn(prune(
                self.ctx.store.clone(),
                keep,
                self.config.prune_interval,
            ))
        });
        if let Some(public) = public_addr {
            let edge = crate::funnel::edge(
                public.port(),
                &self.functions,
                &self.route_infos,
                self.ctx.store.clone(),
            );
            // Set once per context; a second serve of the same gateway keeps the first.
            let _ = self.ctx.edge.set(edge);
        }
        for f in self.functions.iter().filter(|f| f.configured().is_ok()) {
            f.start().await;
        }
        let public_text = public_addr.map_or_else(|| "none".to_owned(), |a| a.to_string());
        tracing::info!(
            %addr,
            public_addr = %public_text,
            operator_token = self.config.operator.token.is_some(),
            version = VERSION,
            store = self.ctx.store.backend(),
            "hub-gateway listening"
        );
        // The listeners are bound and their accept loops start below: under systemd this is
        // READY=1 (and the watchdog's pings begin).
        let watchdog = crate::systemd::ready(self.ctx.store.clone());
        // One deadline for the whole shutdown, counted from the signal: running work gets the
        // grace less a wind-down, then is cancelled and records how far it got, so the process
        // exits within the grace (inside Kubernetes' and systemd's own timeouts).
        let grace = self.config.shutdown_grace;
        let (began_tx, began_rx) = tokio::sync::oneshot::channel();
        // Stop hooks run first, bounded, while the listeners still serve: gate-check closes
        // Funnel so it never points at a gateway that is going away.
        let stoppers = self.functions.clone();
        let stop_bound = (grace / 4).min(Duration::from_secs(10));
        let signal = async move {
            shutdown.await;
            crate::systemd::stopping();
            let _ = began_tx.send(tokio::time::Instant::now());
            for f in stoppers.iter().filter(|f| f.configured().is_ok()) {
                if tokio::time::timeout(stop_bound, f.stop()).await.is_err() {
                    tracing::warn!(function = f.name(), "stop hook timed out");
                }
            }
        };
        let wind_down = (grace / 4).min(Duration::from_secs(5));
        // One signal stops both listeners.
        let stop = tokio_util::sync::CancellationToken::new();
        let signal = {
            let stop = stop.clone();
            async move {
                signal.await;
                stop.cancel();
            }
        };
        let edges = self.routers();
        let metrics = self.ctx.runs.metrics().clone();
        let limits = self.config.conn_limits;
        let operator = server::serve(
            listener,
            edges.operator,
            limits,
            metrics.clone(),
            grace - wind_down,
            stop.clone().cancelled_owned(),
        );
        let public = async {
            if let Some(l) = public {
                server::serve(
                    l,
                    edges.public,
                    limits,
                    metrics,
                    grace - wind_down,
                    stop.clone().cancelled_owned(),
                )
                .await;
            }
        };
        tokio::join!(signal, operator, public);
        let began = began_rx
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now());
        let cancel_at = began + (grace - wind_down);
        for task in [pruner, watchdog].into_iter().flatten() {
            task.abort();
        }
        if let Some(s) = scheduler {
            s.shutdown(cancel_at).await;
        }
        let tasks = &self.ctx.tasks;
        tasks.close();
        if !tasks.is_empty() {
            tracing::info!(pending = tasks.len(), "waiting for background work");
        }
        if tokio::time::timeout_at(cancel_at, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = tasks.len(),
                ?grace,
                "background work still running at the end of the grace; interrupting it"
            );
        }
        self.ctx.shutdown.cancel();
        if tokio::time::timeout_at(began + grace, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = tasks.len(),
                "background work did not stop when interrupted; abandoning it"
            );
        }
        // Requests whose work was just interrupted (a sync started over HTTP) answer now and
        // record their runs. Bounded briefly: a request that hangs must not cost the rows
        // already queued their commit.
        let settle_by = (began + grace).min(tokio::time::Instant::now() + SETTLE);
        if tokio::time::timeout_at(settle_by, self.ctx.runs.settled())
            .await
            .is_err()
        {
            tracing::warn!("requests still running at the end of shutdown; their runs are lost");
        }
        // Run rows still queued for the store (the last requests', the interrupted work's).
        if tokio::time::timeout_at(began + grace, self.ctx.runs.flush())
            .await
            .is_err()
        {
            tracing::warn!("run rows still queued at the end of the grace; abandoning them");
        }
        tracing::info!("hub-gateway stopped");
        Ok(())
    }

    /// Binds the operator and the public listener, after refusing an operator listener
    /// exposed without credentials (before it ever listens).
    pub async fn bind(&self) -> Result<Listeners, StartError> {
        let addr = self.config.addr();
        self.config.operator.check_exposure(addr)?;
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        Ok(Listeners {
            operator: bind(addr).await?,
            public: Some(bind(self.config.public_addr()).await?),
        })
    }
}

/// Rows deleted per statement when pruning history.
const PRUNE_BATCH: i64 = 5_000;

/// How long shutdown waits for requests still answering once their work is interrupted: they
/// only have to build a response and queue a row.
const SETTLE: Duration = Duration::from_secs(1);

/// Keeps run history and schedule ticks to `keep`, every `every` (first right after start).
/// Replicas sharing a database all prune; the deletes are idempotent.
async fn prune(store: hub_runtime::Store, keep: Duration, every: Duration) {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(cutoff) = chrono::Utc::now().checked_sub_signed(keep) else {
            return;
        };
        match store.prune_history(cutoff, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, %cutoff, "pruned old run history"),
            Err(e) => tracing::warn!(error = %e, "cannot prune run history; retrying later"),
        }
    }
}

/// Resolves on SIGTERM (systemd, Kubernetes) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// One function as `/api/functions` and the index page describe it.
#[derive(Debug, Serialize)]
pub struct FunctionInfo {
    pub name: &'static str,
    pub routes: Vec<hub_runtime::RouteInfo>,
    /// Effective cron schedule (after overrides); `null` when none or `off`.
    pub schedule: Option<String>,
    pub next_due: Option<chrono::DateTime<chrono::Utc>>,
    pub configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Gateway {
    pub fn function_infos(&self) -> Vec<FunctionInfo> {
        self.functions
            .iter()
            .zip(self.route_infos.iter())
            .map(|(f, routes)| {
                let configured = f.configured();
                let plan = self.plans.iter().find(|p| p.function == f.name());
                FunctionInfo {
                    name: f.name(),
                    routes: routes.clone(),
                    schedule: plan.map(|p| p.expr.clone()),
                    next_due: plan.and_then(|p| scheduler::next_due(p, chrono::Utc::now())),
                    configured: configured.is_ok(),
                    reason: configured.err(),
                }
            })
            .collect()
    }
}
