//! The peer of the `/healthz` row: a bare axum hello on the same axum, tokio and hyper as the
//! gateway, so the difference is the gateway's middleware and nothing else.
//! Usage: `bench-hello PORT` (127.0.0.1).

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8099);
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}
