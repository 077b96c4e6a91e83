//! What the gateway tells gate-check about its public edge once the public listener is bound:
//! the port Funnel must forward to, the public paths, and a readiness check.

use hub_runtime::function::ReadyCheck;
use hub_runtime::{Edge, Function, RouteInfo, Store};
use std::sync::Arc;

/// The edge for `functions` (with their routes, in the same order) behind `public_port`.
///
/// Readiness is the store plus every configured function that serves a public route, not the
/// whole of `/readyz`: Funnel exposes only those, so a failing backup target must not take the
/// webhook offline. gate-check itself is left out (it would wait on itself).
pub fn edge(
    public_port: u16,
    functions: &[Arc<dyn Function>],
    routes: &[Vec<RouteInfo>],
    store: Store,
) -> Edge {
    let mut public_paths: Vec<String> = routes
        .iter()
        .flatten()
        .filter(|r| r.public)
        .map(|r| r.path.to_owned())
        .collect();
    public_paths.sort();
    public_paths.dedup();
    let exposed: Vec<Arc<dyn Function>> = functions
        .iter()
        .zip(routes)
        .filter(|(f, infos)| f.name() != gate_check::NAME && infos.iter().any(|r| r.public))
        .map(|(f, _)| f.clone())
        .collect();
    let ready: ReadyCheck = Arc::new(move || {
        let (exposed, store) = (exposed.clone(), store.clone());
        Box::pin(async move {
            store
                .ping()
                .await
                .map_err(|e| format!("{} store: {e}", store.backend()))?;
            for f in exposed.iter().filter(|f| f.configured().is_ok()) {
                f.ready().await.map_err(|r| format!("{}: {r}", f.name()))?;
            }
            Ok(())
        })
    });
    Edge {
        public_port,
        public_paths,
        ready,
    }
}
