//! A client of tailscaled's LocalAPI: HTTP/1.1 over its unix socket (hyper; reqwest speaks TCP
//! only), one connection per call, each call bounded by one deadline.
//!
//! **Pinned to Tailscale v1.88** (`ipn/localapi/serve.go`, `ipn/ipnlocal/serve.go`,
//! `ipn/serve.go`); the LocalAPI is not a stable API, so a newer tailscaled may change these
//! shapes, and anything this client does not recognise is an error (the gate then fails closed):
//! - requests carry `Host: local-tailscaled.sock` (tailscaled refuses other hosts with 403) and
//!   `Sec-Tailscale: localapi` (what its own CLI sends);
//! - `GET /localapi/v0/serve-config` answers the ServeConfig JSON (`null` when none is set) and
//!   `Etag`: the hex SHA-256 of `json.Marshal` of the config, i.e. of the body bytes, sent
//!   unquoted. The value is echoed back verbatim in `If-Match`;
//! - `POST` of a config with `If-Match` answers 200, or 412 when the config changed since the
//!   ETag was read;
//! - `GET /localapi/v0/status?peers=false` answers `BackendState` and `Self.DNSName` (the
//!   node's MagicDNS name, with a trailing dot).

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Host header tailscaled accepts on its socket.
const HOST: &str = "local-tailscaled.sock";
/// Largest answer read; a ServeConfig is a few kilobytes.
const MAX_ANSWER: usize = 1 << 20;
const SERVE_CONFIG: &str = "/localapi/v0/serve-config";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach tailscaled at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tailscaled did not answer {what} within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("talking to tailscaled: {0}")]
    Http(String),
    #[error("tailscaled answered {what} with {status}: {body}")]
    Status {
        what: String,
        status: StatusCode,
        body: String,
    },
    /// 412: the config changed between our read and our write.
    #[error("the serve config changed since it was read (412)")]
    Stale,
    #[error("tailscaled's answer to {what} is not what v1.88 sends: {detail}")]
    Unknown { what: String, detail: String },
}

/// The live ServeConfig and the ETag it was read with.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub config: Value,
    pub etag: String,
}

/// `tailscale status`'s part the gate needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub backend_state: String,
    /// The MagicDNS name without its trailing dot.
    pub dns_name: String,
}

#[derive(Debug, Clone)]
pub struct LocalApi {
    socket: PathBuf,
    timeout: Duration,
}

struct Answer {
    status: StatusCode,
    etag: Option<String>,
    body: Bytes,
}

impl LocalApi {
    pub fn new(socket: PathBuf, timeout: Duration) -> Self {
        Self { socket, timeout }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn status(&self) -> Result<NodeStatus, ApiError> {
        let what = "GET status";
        let a = self
            .call(Method::GET, "/localapi/v0/status?peers=false", None, None)
            .await?;
        let v = json_of(what, &a)?;
        let unknown = |detail: &str| ApiError::Unknown {
            what: what.into(),
            detail: detail.into(),
        };
        let backend_state = v
            .get("BackendState")
            .and_then(Value::as_str)
            .ok_or_else(|| unknown("no BackendState"))?
            .to_owned();
        let dns_name = v
            .get("Self")
            .and_then(|s| s.get("DNSName"))
            .and_then(Value::as_str)
            .map(|n| n.trim_end_matches('.').to_owned())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| unknown("no Self.DNSName (is MagicDNS on?)"))?;
        Ok(NodeStatus {
            backend_state,
            dns_name,
        })
    }

    pub async fn serve_config(&self) -> Result<Fetched, ApiError> {
        let what = "GET serve-config";
        let a = self.call(Method::GET, SERVE_CONFIG, None, None).await?;
        let config = json_of(what, &a)?;
        if !(config.is_null() || config.is_object()) {
            return Err(ApiError::Unknown {
                what: what.into(),
                detail: "neither null nor an object".into(),
            });
        }
        let etag = a.etag.filter(|e| !e.is_empty()).ok_or(ApiError::Unknown {
            what: what.into(),
            detail: "no Etag header (a tailscaled older than v1.52?)".into(),
        })?;
        Ok(Fetched { config, etag })
    }

    /// Writes `config` if the live one still has `etag`; [`ApiError::Stale`] when not.
    pub async fn set_serve_config(&self, config: &Value, etag: &str) -> Result<(), ApiError> {
        let body = serde_json::to_vec(config).map_err(|e| ApiError::Http(e.to_string()))?;
        let a = self
            .call(Method::POST, SERVE_CONFIG, Some(etag), Some(body))
            .await?;
        match a.status {
            s if s.is_success() => Ok(()),
            StatusCode::PRECONDITION_FAILED => Err(ApiError::Stale),
            status => Err(status_error("POST serve-config", status, &a.body)),
        }
    }

    async fn call(
        &self,
        method: Method,
        target: &str,
        if_match: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ApiError> {
        let what = format!("{method} {target}");
        tokio::time::timeout(self.timeout, self.exchange(method, target, if_match, body))
            .await
            .map_err(|_| ApiError::Timeout {
                what,
                timeout: self.timeout,
            })?
    }

    async fn exchange(
        &self,
        method: Method,
        target: &str,
        if_match: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ApiError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ApiError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        let http = |e: &dyn std::fmt::Display| ApiError::Http(e.to_string());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(&e))?;
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, HOST)
            .header("Sec-Tailscale", "localapi");
        if let Some(tag) = if_match {
            req = req.header(header::IF_MATCH, tag);
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| http(&e))?;
        let exchange = async {
            let resp = sender.send_request(req).await.map_err(|e| http(&e))?;
            let status = resp.status();
            let etag = resp
                .headers()
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| http(&e))?
                .to_bytes();
            Ok(Answer { status, etag, body })
        };
        // The connection is driven alongside the exchange and dropped (closed) with it.
        tokio::pin!(conn);
        tokio::select! {
            answer = exchange => answer,
            ended = &mut conn => Err(ApiError::Http(match ended {
                Ok(()) => "tailscaled closed the connection".into(),
                Err(e) => e.to_string(),
            })),
        }
    }
}

fn status_error(what: &str, status: StatusCode, body: &[u8]) -> ApiError {
    let text = String::from_utf8_lossy(body);
    ApiError::Status {
        what: what.into(),
        status,
        body: text.trim().chars().take(200).collect(),
    }
}

fn json_of(what: &str, a: &Answer) -> Result<Value, ApiError> {
    if !a.status.is_success() {
        return Err(status_error(what, a.status, &a.body));
    }
    serde_json::from_slice(&a.body).map_err(|e| ApiError::Unknown {
        what: what.into(),
        detail: format!("not JSON: {e}"),
    })
}
