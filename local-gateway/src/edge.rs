//! The gateway's two edges. Tailscale Funnel publishes a whole host:port, never a path, so
//! anything mounted on a funnelled port is on the internet. Hence:
//!
//! - the **public listener** (`HUB_PUBLIC_BIND`:`HUB_PUBLIC_PORT`, default 127.0.0.1:8086)
//!   mounts the routes functions mark public and nothing else; Funnel points only at it. Public
//!   routes carry their own credentials (webhook signature, collector token);
//! - the **operator listener** (`HUB_BIND`:`PORT`, default 127.0.0.1:8085) serves every route.
//!   Its operator routes (everything not public) refuse requests carrying
//!   `Tailscale-Funnel-Request` with 403, counted in `hub_funnel_refused_total`: defence in
//!   depth for a Funnel pointed at the wrong port. With `HUB_OPERATOR_TOKEN` set they also
//!   require it (bearer, or HTTP Basic with any user so a browser can open the status page);
//!   `/healthz` and `/readyz` stay open for probes. Both checks run on headers alone, before any
//!   function guard, body read or concurrency slot.
//!
//! Without a token the operator listener must stay on loopback, unless
//! `HUB_OPERATOR_ANONYMOUS=true` says serving it to the network is intended.

use crate::app::StartError;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hub_runtime::auth::check_bearer_or_basic;
use hub_runtime::error::{error_response, respond};
use hub_runtime::http::Admission;
use hub_runtime::metrics::Metrics;
use hub_runtime::{ConfigError, RouteInfo, Source};
use secrecy::SecretString;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Set by tailscaled on every request it forwards from Funnel.
pub const FUNNEL_HEADER: &str = "tailscale-funnel-request";

/// Gateway routes open without operator credentials, for liveness and readiness probes.
pub const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// What browsers are told on a 401, so they prompt for credentials.
pub const CHALLENGE: &str = "Basic realm=\"hub-gateway\"";

/// Who may use the operator routes.
#[derive(Debug, Clone, Default)]
pub struct OperatorAccess {
    /// `HUB_OPERATOR_TOKEN` / `_FILE`: required on operator routes when set.
    pub token: Option<SecretString>,
    /// `HUB_OPERATOR_ANONYMOUS` (default false): serve operator routes without a token on a
    /// non-loopback `HUB_BIND`, on purpose.
    pub anonymous: bool,
}

impl OperatorAccess {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            token: src.secret("gateway.operator_token", "HUB_OPERATOR_TOKEN")?,
            anonymous: src.get_or(
                "gateway.operator_anonymous",
                "HUB_OPERATOR_ANONYMOUS",
                false,
            )?,
        })
    }

    /// Refuses to serve operator routes beyond loopback without credentials, unless that was
    /// asked for: a `HUB_BIND=0.0.0.0` meant for a container must not publish the status page,
    /// run history and sync triggers to the whole network by accident.
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), StartError> {
        if addr.ip().is_loopback() || self.token.is_some() {
            return Ok(());
        }
        if self.anonymous {
            tracing::warn!(
                %addr,
                "operator routes served without credentials beyond loopback (HUB_OPERATOR_ANONYMOUS=true)"
            );
            return Ok(());
        }
        Err(StartError::Exposed { addr })
    }
}

/// The gateway's sockets: the operator listener, and the public one (absent when only the
/// operator listener is served, as in tests and embeddings that need no public edge).
#[derive(Debug)]
pub struct Listeners {
    pub operator: TcpListener,
    pub public: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(operator: TcpListener) -> Self {
        Self {
            operator,
            public: None,
        }
    }
}

/// The operator listener's admission check, in front of every route it serves.
#[derive(Debug)]
pub(crate) struct OperatorGate {
    /// (method, path) of every public route: these keep their own credentials.
    public: HashSet<(&'static str, &'static str)>,
    token: Option<SecretString>,
    metrics: Metrics,
}

impl OperatorGate {
    pub(crate) fn new<'a>(
        routes: impl IntoIterator<Item = &'a RouteInfo>,
        token: Option<SecretString>,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            public: routes
                .into_iter()
                .filter(|r| r.public)
                .map(|r| (r.method, r.path))
                .collect(),
            token,
            metrics,
        })
    }
}

impl Admission for OperatorGate {
    /// Refuses funnelled requests to operator routes (403) and, with a token set, requests
    /// without it (401). An unmatched path counts as an operator route, so an anonymous client
    /// cannot tell which routes exist.
    fn refusal(&self, req: &Request, path: Option<&str>) -> Option<Response> {
        if path.is_some_and(|p| self.public.contains(&(req.method().as_str(), p))) {
            return None;
        }
        if req.headers().contains_key(FUNNEL_HEADER) {
            self.metrics.funnel_refused();
            tracing::warn!(
                route = path.unwrap_or("unmatched"),
                "refused a request through Tailscale Funnel to an operator route; point Funnel at the public listener"
            );
            return Some(error_response(
                StatusCode::FORBIDDEN,
                "operator routes are not served through Tailscale Funnel",
            ));
        }
        let probe = path.is_some_and(|p| PROBES.contains(&p));
        if let (Some(token), false) = (&self.token, probe) {
            if let Err(e) = check_bearer_or_basic(token, req.headers()) {
                let mut resp = respond(&e);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(CHALLENGE),
                );
                return Some(resp);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn exposure_needs_a_token_or_consent_beyond_loopback() {
        let none = OperatorAccess::default();
        assert!(none.check_exposure(addr("127.0.0.1:8085")).is_ok());
        assert!(none.check_exposure(addr("[::1]:8085")).is_ok());
        for open in ["0.0.0.0:8085", "[::]:8085", "192.168.1.10:8085"] {
            let err = none.check_exposure(addr(open)).expect_err(open).to_string();
            for name in ["HUB_BIND", "HUB_OPERATOR_TOKEN", "HUB_OPERATOR_ANONYMOUS"] {
                assert!(err.contains(name), "{err}");
            }
        }
        let token = OperatorAccess {
            token: Some("t".into()),
            anonymous: false,
        };
        assert!(token.check_exposure(addr("0.0.0.0:8085")).is_ok());
        let anonymous = OperatorAccess {
            token: None,
            anonymous: true,
        };
        assert!(anonymous.check_exposure(addr("0.0.0.0:8085")).is_ok());
    }
}
