//! The harness of gate-check's tests: the function built from settings as the gateway builds
//! it, over the embedded store (or a real PostgreSQL database) and the LocalAPI stand-in, with
//! the edge slot filled as the gateway fills it: a real bound public listener and a readiness
//! the test steers.
#![allow(dead_code)] // each test file uses its own part of the harness

use gate_check::Gate;
use hub_runtime::{Context, Edge, Function, HubConfig, Source, Store, Trigger};
use hub_testkit::tailscale::LocalApi;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tempfile::TempDir;

pub const HOST_PORT: &str = "hub.tail1234.ts.net:443";
pub const HOOK: &str = "/api/webhook/github";

/// What the gateway's readiness answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Ready {
    Yes = 0,
    No = 1,
    Hang = 2,
}

pub struct Env {
    pub api: LocalApi,
    pub data: TempDir,
    pub settings: HashMap<String, String>,
    /// The public listener Funnel proxies to (bound, never accepting: a connect succeeds).
    pub public: std::net::TcpListener,
    ready: Arc<AtomicU8>,
}

impl Env {
    pub async fn new() -> Self {
        let api = LocalApi::start().await;
        let data = TempDir::new().expect("data dir");
        let settings = HashMap::from([
            ("HUB_DATA_DIR".to_owned(), data.path().display().to_string()),
            (
                "TAILSCALE_SOCKET".to_owned(),
                api.socket().display().to_string(),
            ),
            ("GATE_TIMEOUT_SECS".to_owned(), "1".to_owned()),
        ]);
        let public = std::net::TcpListener::bind("127.0.0.1:0").expect("public listener");
        Self {
            api,
            data,
            settings,
            public,
            ready: Arc::new(AtomicU8::new(Ready::Yes as u8)),
        }
    }

    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.settings.insert(key.into(), value.to_string());
        self
    }

    pub fn ready(&self, r: Ready) {
        self.ready.store(r as u8, Ordering::SeqCst);
    }

    pub fn public_port(&self) -> u16 {
        self.public.local_addr().expect("bound").port()
    }

    /// The context as the gateway makes it, without the edge filled.
    pub async fn context(&self, trigger: Trigger) -> Context {
        let source = Source::from_parts(None, self.settings.clone()).expect("source");
        let hub = HubConfig::from_source(&source).expect("hub config");
        let store = Store::connect(&hub).await.expect("store");
        Context::new(source, hub, store, trigger)
    }

    /// What the gateway must do after binding its public listener.
    pub fn fill_edge(&self, ctx: &Context) {
        let ready = self.ready.clone();
        let edge = Edge {
            public_port: self.public_port(),
            public_paths: vec![HOOK.to_owned()],
            ready: Arc::new(move || {
                let state = ready.load(Ordering::SeqCst);
                Box::pin(async move {
                    match state {
                        0 => Ok(()),
                        1 => Err("store unreachable".to_owned()),
                        _ => std::future::pending().await,
                    }
                })
            }),
        };
        assert!(ctx.edge.set(edge).is_ok(), "the edge is filled once");
    }

    /// The gate behind a gateway that has published its edge.
    pub async fn gate(&self) -> (Gate, Context) {
        let ctx = self.context(Trigger::Http).await;
        self.fill_edge(&ctx);
        let gate = Gate::from_context(&ctx).expect("gate-check config");
        (gate, ctx)
    }

    /// The serve config an open gate publishes on this env.
    pub fn open_config(&self) -> Value {
        json!({
            "TCP": {"443": {"HTTPS": true}},
            "Web": {HOST_PORT: {"Handlers": {HOOK: {"Proxy": format!("http://127.0.0.1:{}{HOOK}", self.public_port())}}}},
            "AllowFunnel": {HOST_PORT: true},
        })
    }
}

/// One check through `invoke`, as the scheduler runs it, recorded as a run.
pub async fn scheduled(gate: &Gate, ctx: &Context) -> Result<String, String> {
    ctx.runs
        .track(
            gate_check::NAME,
            Trigger::Schedule,
            gate.invoke(Trigger::Schedule, json!({})),
        )
        .await
        .map(|r| r.summary)
        .map_err(|e| e.to_string())
}

/// `hub_gate_open` and the two transition counters, from the Prometheus text.
pub fn gate_metrics(ctx: &Context) -> (String, String, String) {
    let text = ctx.runs.metrics().encode_prometheus();
    let find = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_owned())
            .unwrap_or_else(|| format!("missing {prefix} in:\n{text}"))
    };
    (
        find("hub_gate_open "),
        find("hub_gate_transitions_total{to=\"open\"}"),
        find("hub_gate_transitions_total{to=\"closed\"}"),
    )
}
