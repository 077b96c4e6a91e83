//! The floor `/healthz` is measured against (`scripts/bench-gateway.sh`): a bare axum server
//! answering `GET /healthz` with the same bytes as the gateway's, on the same runtime, with no
//! middleware at all. `bare-hello PORT` serves on 127.0.0.1:PORT until killed.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let app = Router::new().route(
        "/healthz",
        get(|| async { ([(CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}
