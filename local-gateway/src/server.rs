//! The accept loop. `axum::serve` sets no header-read timeout, no idle timeout and no cap on
//! connections, so a client sending a byte a second, or thousands of idle sockets, could hold
//! the process's file descriptors until `/healthz` itself stopped answering. Here every
//! connection has a deadline for each request's headers (which also ends a keep-alive
//! connection idle for that long), and beyond `max_connections` new connections are answered
//! 503 and closed at once instead of queueing.

use axum::Router;
use hub_runtime::metrics::Metrics;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection-level limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Deadline for a request's headers, counted from when the connection starts waiting for
    /// them: a slowloris client and an idle keep-alive connection are both closed after it.
    pub header_timeout: Duration,
    /// Open connections served at once, per listener: each listener has its own, so a flood
    /// on the public one cannot take the operator's.
    pub max_connections: usize,
}

/// Sent to a connection over the cap; it is closed right after.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
content-type: application/json\r\nretry-after: 1\r\ncontent-length: 47\r\n\r\n\
{\"error\":\"too many connections, retry shortly\"}";

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits (at
/// most `grace`) for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    metrics: Metrics,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    // HTTP/1.1 only: detecting HTTP/2 would first wait for the client's opening bytes with no
    // deadline at all, so a socket that sends nothing would stay open. Webhook senders,
    // collectors and browsers behind a proxy all speak HTTP/1.1.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before accept): not
                    // fatal; pause so the loop does not spin while nothing can be accepted.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics.connection_refused();
            // Best effort: the socket is fresh, so the short answer fits its send buffer.
            let _ = stream.try_write(TOO_MANY);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let open = metrics.connection_opened();
        let conn = builder
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            )
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed out, malformed); nothing to report.
            let _ = conn.await;
            drop((slot, open));
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?grace, "connections still open at shutdown; closing them");
    }
}

/// Raises the soft limit on open files to the hard limit (systemd's default soft limit is
/// 1024), so the connection cap, not the kernel, decides when to refuse. Returns the limit now
/// in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_declares_its_body_length() {
        let text = std::str::from_utf8(super::TOO_MANY).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let declared = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("content-length");
        assert_eq!(declared.parse::<usize>().expect("number"), body.len());
    }
}
