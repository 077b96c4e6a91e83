//! # webhook-gitops
//!
//! Verifies GitHub webhooks and fast-forwards local checkouts that opted in, then runs their
//! reload step.
//!
//! **Route:** `POST /api/webhook/gitops` (the seed's path), served by the gateway and, from the
//! same Router, by the Lambda binary in `src/main.rs`. A *public* route: the gateway serves it
//! on its public listener too, the one Tailscale Funnel points at.
//!
//! **Flow of a delivery:** check `X-Hub-Signature-256` over the raw body (401 if missing or
//! wrong) → parse JSON (400; either content type GitHub offers: `application/json`, or
//! `application/x-www-form-urlencoded` with the JSON in its `payload` field) → `ping` answers 200 → only a `push` to the deployed branch or a
//! merged `pull_request` into it goes on, anything else answers 200 `ignored: <why>` → the
//! repository name must be `[A-Za-z0-9._-]+` (400) and `GITOPS_BASE_DIR/<name>` a git checkout
//! (404) holding a `.gitops` marker (403) → a delivery seen before (same `X-GitHub-Delivery` or
//! same body) answers 200 `duplicate`, unless its sync failed → the delivery is recorded as
//! pending in the store, then answered 202, and the sync runs in the background. It counts as
//! done only once a sync succeeded; pending deliveries are synced at the next start (see
//! [`queue`]). At most one sync per repository runs at a time; pushes arriving meanwhile
//! coalesce into one follow-up, which starts no sooner than `GITOPS_SYNC_INTERVAL_MS` after
//! the sync before it did.
//!
//! **Environment:** `GITHUB_WEBHOOK_SECRET` / `GITHUB_WEBHOOK_SECRET_FILE` (required; without it
//! the function is "not configured" and answers 503), `GITOPS_BASE_DIR` (default `/srv/gitops`),
//! `GITOPS_BRANCH` (default `main`), `GITOPS_GIT`, `GITOPS_GIT_TIMEOUT_SECS`,
//! `GITOPS_RELOAD_TIMEOUT_SECS`, `GITOPS_SYNC_INTERVAL_MS` (default 1000); reload commands per
//! repository under `[webhook_gitops.reload]` in `hub.toml`, else the command named in the
//! `.gitops` marker (see [`sync`]).
//!
//! **Direct invocation:** `hub-gateway invoke webhook-gitops --data '{"repository":"NAME"}'`
//! syncs one checkout now; without `repository` it syncs every opted-in checkout.
//!
//! **On Lambda** the response is sent before the background sync finishes, and Lambda may
//! freeze the process then; the function is meant for hosts that hold the checkouts.

pub mod config;
pub mod event;
pub mod queue;
pub mod signature;
pub mod sync;
pub mod testing;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use config::GitopsConfig;
use event::Decision;
use futures::FutureExt;
use futures::future::BoxFuture;
use hub_runtime::error::{PublicError, respond};
use hub_runtime::http::reply;
use hub_runtime::routes::Guard;
use hub_runtime::store::{StoreError, Writer};
use hub_runtime::{
    ConfigError, Context, Function, InvokeError, Registration, Report, RouteTable, Routes, Store,
    Trigger, require,
};
use queue::{Queued, SyncQueue};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use sync::SyncError;

pub const NAME: &str = "webhook-gitops";
pub const WEBHOOK_PATH: &str = "/api/webhook/gitops";
/// How the gateway and the Lambda binary build this function.
pub const REGISTRATION: Registration = Registration {
    name: NAME,
    env_help: ENV_HELP,
    build: |ctx| Ok(Arc::new(WebhookGitops::from_context(ctx)?)),
};

const ENV_HELP: &str = "\
webhook-gitops:
  GITHUB_WEBHOOK_SECRET(_FILE) HMAC secret of the GitHub webhook (required to accept deliveries)
  GITOPS_BASE_DIR             where checkouts live, <base>/<repo> (default /srv/gitops)
  GITOPS_BRANCH               deployed branch (default main)
  GITOPS_GIT                  git executable (default git)
  GITOPS_GIT_TIMEOUT_SECS     bound on each git command (default 120)
  GITOPS_RELOAD_TIMEOUT_SECS  bound on the reload hook (default 300)
  GITOPS_SYNC_INTERVAL_MS     least time between the starts of a repository's syncs (default 1000)
  GITOPS_RUN_AS               user reload hooks run as (needs a root gateway; default: the gateway's)";

/// Longest `X-GitHub-Delivery` accepted (GitHub sends 36-character UUIDs).
const MAX_DELIVERY_ID: usize = 128;

/// GitHub lets deliveries be redelivered for a few days; a month is comfortably longer.
const REPLAY_MEMORY: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook secret is not configured")]
    NotConfigured,
    #[error("cannot read request body: {0}")]
    Body(#[from] BytesRejection),
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    #[error("missing X-GitHub-Event header")]
    MissingEvent,
    #[error("body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    InvalidPayload(String),
    #[error("invalid repository name")]
    BadRepoName,
    #[error(transparent)]
    Checkout(SyncError),
    #[error("store unavailable")]
    Store(#[from] StoreError),
}

impl PublicError for WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            WebhookError::NotConfigured | WebhookError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebhookError::Body(r) => r.status(),
            WebhookError::Signature(_) => StatusCode::UNAUTHORIZED,
            WebhookError::MissingEvent
            | WebhookError::Json(_)
            | WebhookError::InvalidPayload(_)
            | WebhookError::BadRepoName => StatusCode::BAD_REQUEST,
            WebhookError::Checkout(SyncError::NoCheckout(_)) => StatusCode::NOT_FOUND,
            WebhookError::Checkout(SyncError::NotOptedIn(_)) => StatusCode::FORBIDDEN,
            WebhookError::Checkout(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn public_message(&self) -> String {
        match self {
            WebhookError::Json(_) => "body is not valid JSON".into(),
            WebhookError::Body(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                "request body too large".into()
            }
            WebhookError::Body(_) => "cannot read request body".into(),
            WebhookError::Checkout(e @ (SyncError::NoCheckout(_) | SyncError::NotOptedIn(_))) => {
                e.to_string()
            }
            WebhookError::Checkout(_) => "internal error".into(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        respond(&self)
    }
}

/// The function: config, store handle and the sync queue.
#[derive(Debug, Clone)]
pub struct WebhookGitops {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: Arc<GitopsConfig>,
    store: Store,
    writer: Writer,
    queue: Arc<SyncQueue>,
    http_trigger: Trigger,
}

impl WebhookGitops {
    pub fn from_context(ctx: Context) -> Result<Self, ConfigError> {
        let cfg = Arc::new(GitopsConfig::from_source(&ctx.source)?);
        let queue = SyncQueue::new(cfg.clone(), ctx.runs.clone(), ctx.tasks.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                store: ctx.store,
                writer: ctx.runs.writer().clone(),
                queue,
                http_trigger: ctx.http_trigger,
            }),
        })
    }

    pub fn config(&self) -> &GitopsConfig {
        &self.inner.cfg
    }
}

async fn handle(
    State(app): State<WebhookGitops>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebhookError> {
    let inner = &app.inner;
    let secret = inner
        .cfg
        .secret
        .as_ref()
        .ok_or(WebhookError::NotConfigured)?;
    let body = body?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signature::verify(
        secret.expose_secret().as_bytes(),
        &body,
        header("x-hub-signature-256"),
    )?;
    let event = header("x-github-event").ok_or(WebhookError::MissingEvent)?;
    let payload: serde_json::Value = match header("content-type") {
        // GitHub's default content type: the JSON is the `payload` field of a form; the
        // signature covers the form as sent, checked above.
        Some(ct) if ct.starts_with("application/x-www-form-urlencoded") => {
            let json = form_urlencoded::parse(&body)
                .find(|(k, _)| k == "payload")
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    WebhookError::InvalidPayload("form body has no payload field".into())
                })?;
            serde_json::from_str(&json)?
        }
        _ => serde_json::from_slice(&body)?,
    };

    let repository = match event::decide(event, &payload, &inner.cfg.branch) {
        Decision::Pong => {
            return Ok(reply(StatusCode::OK, json!({"status": "pong"}), "ping"));
        }
        Decision::Ignore(why) => {
            let message = format!("ignored: {why}");
            return Ok(reply(
                StatusCode::OK,
                json!({"status": "ignored", "message": message}),
                message,
            ));
        }
        Decision::Invalid(why) => return Err(WebhookError::InvalidPayload(why)),
        Decision::Sync { repository } => repository,
    };
    if !event::valid_repo_name(&repository) {
        return Err(WebhookError::BadRepoName);
    }
    sync::checkout_dir(&inner.cfg, &repository).map_err(WebhookError::Checkout)?;

    let body_key = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    let delivery = header("x-github-delivery");
    // GitHub's ids are UUIDs; anything far longer would only bloat (or break) the replay index.
    if delivery.is_some_and(|d| d.len() > MAX_DELIVERY_ID || d.chars().any(char::is_control)) {
        return Err(WebhookError::InvalidPayload(format!(
            "X-GitHub-Delivery must be at most {MAX_DELIVERY_ID} printable characters"
        )));
    }
    let delivery_key = delivery.map(|d| format!("delivery:{d}"));
    let keys: Vec<&str> = delivery_key
        .as_deref()
        .into_iter()
        .chain([body_key.as_str()])
        .collect();
    // Claimed (pending) and committed before the 202: the sync it promises survives a crash.
    // The claim shares a transaction with whatever else is being written at the moment.
    if !inner
        .writer
        .claim_keys(queue::SCOPE, &repository, &keys)
        .await?
    {
        return Ok(reply(
            StatusCode::OK,
            json!({"status": "duplicate", "repository": repository}),
            format!("duplicate delivery for {repository}"),
        ));
    }

    let queued = inner.queue.request(&repository, inner.http_trigger);
    let coalesced = queued == Queued::Coalesced;
    Ok(reply(
        StatusCode::ACCEPTED,
        json!({"status": "accepted", "repository": repository, "coalesced": coalesced}),
        if coalesced {
            format!("accepted: {repository} sync already running, follow-up queued")
        } else {
            format!("accepted: {repository} sync started")
        },
    ))
}

impl Function for WebhookGitops {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(&self) -> Routes {
        // The signature covers the body, so the handler verifies it; the guard refuses, on the
        // headers alone, what cannot be signed at all (no secret here, no well-formed header),
        // so such requests never have their body read or take a slot.
        let configured = self.inner.cfg.secret.is_some();
        let guard: Guard = Arc::new(move |headers: &HeaderMap| {
            if !configured {
                return Some(respond(&WebhookError::NotConfigured));
            }
            let header = headers
                .get("x-hub-signature-256")
                .and_then(|v| v.to_str().ok());
            signature::digest(header)
                .err()
                .map(|e| respond(&WebhookError::Signature(e)))
        });
        // Public: GitHub reaches it through Funnel; the signature is its credential.
        RouteTable::new()
            .post(WEBHOOK_PATH, handle)
            .guarded(guard)
            .public()
            .with_state(self.clone())
    }

    fn configured(&self) -> Result<(), String> {
        require(&self.inner.cfg.secret, "GITHUB_WEBHOOK_SECRET")
    }

    fn start(&self) -> BoxFuture<'_, ()> {
        async move {
            // Keep the replay table small; a failure only delays the clean-up.
            let store = &self.inner.store;
            if let Err(e) = store
                .forget_keys_older_than(queue::SCOPE, REPLAY_MEMORY)
                .await
            {
                tracing::warn!(error = %e, "cannot prune old webhook deliveries");
            }
            // Off the start-up path; a delivery arriving meanwhile waits for it in the writer.
            let writer = self.inner.writer.clone();
            tokio::spawn(async move {
                if let Err(e) = writer.load_keys().await {
                    tracing::warn!(error = %e, "cannot read remembered webhook deliveries yet; the first delivery will");
                }
            });
            self.inner.queue.resume().await;
        }
        .boxed()
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            let cfg = &self.inner.cfg;
            if !cfg.base_dir.is_dir() {
                return Err(format!(
                    "GITOPS_BASE_DIR {} is not a directory",
                    cfg.base_dir.display()
                ));
            }
            let out = tokio::process::Command::new(&cfg.git)
                .arg("--version")
                .stdin(std::process::Stdio::null())
                .output()
                .await;
            match out {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "{} --version failed ({})",
                    cfg.git.display(),
                    o.status
                )),
                Err(e) => Err(format!("cannot run {}: {e}", cfg.git.display())),
            }
        }
        .boxed()
    }

    fn invoke(
        &self,
        _trigger: Trigger,
        input: serde_json::Value,
    ) -> BoxFuture<'_, Result<Report, InvokeError>> {
        async move {
            let cfg = &self.inner.cfg;
            let named = match input.get("repository") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) if event::valid_repo_name(s) => Some(s.clone()),
                Some(_) => {
                    return Err(InvokeError::BadInput(
                        "\"repository\" must be a repository name ([A-Za-z0-9._-]+)".into(),
                    ));
                }
            };
            let repos = match named {
                Some(name) => vec![name],
                None => opted_in_checkouts(cfg)?,
            };
            if repos.is_empty() {
                return Ok(Report::skipped(format!(
                    "no opted-in checkouts under {}",
                    cfg.base_dir.display()
                )));
            }
            let mut lines = Vec::new();
            let mut failed = 0;
            let mut all_skipped = true;
            for repo in &repos {
                match sync::sync_repo(cfg, repo).await {
                    Ok(report) => {
                        all_skipped &= report.outcome == hub_runtime::Outcome::Skipped;
                        lines.push(report.summary);
                    }
                    Err(e) => {
                        failed += 1;
                        all_skipped = false;
                        lines.push(format!("{repo}: {e}"));
                    }
                }
            }
            let summary = lines.join("; ");
            if failed > 0 {
                Err(InvokeError::Failed(summary))
            } else if all_skipped {
                Ok(Report::skipped(summary))
            } else {
                Ok(Report::success(summary))
            }
        }
        .boxed()
    }
}

/// Every checkout under the base directory that carries the marker, sorted by name.
fn opted_in_checkouts(cfg: &GitopsConfig) -> Result<Vec<String>, InvokeError> {
    let entries = std::fs::read_dir(&cfg.base_dir)
        .map_err(|e| InvokeError::Failed(format!("cannot list {}: {e}", cfg.base_dir.display())))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| event::valid_repo_name(n) && sync::checkout_dir(cfg, n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}
