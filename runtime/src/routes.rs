//! A function's routes, declared once: the same table yields the axum `Router` the gateway and
//! Lambda serve and the `RouteInfo` list `/api/functions` shows, so the two cannot drift.
//!
//! A route may carry a [`Guard`]: a check on the request's headers alone (a bearer token, say)
//! that the shared stack runs before anything else of the function — before a concurrency
//! slot is taken, the body is read or a run is recorded (see `http::function_layers`).
//!
//! A route is an *operator* route unless marked [`RouteTable::public`]. Tailscale Funnel
//! publishes a whole host:port, not a path, so the gateway mounts public routes alone on a
//! listener of their own and gives operator routes credentials; operator is the default so a
//! route nobody thought about never ends up on the internet.

use axum::Router;
use axum::handler::Handler;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::MethodRouter;
use std::sync::Arc;

/// One route a function serves, for `/api/functions` and the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    /// Served on the gateway's public listener (reachable through Funnel); `false`: an
    /// operator route, served only on the operator listener.
    pub public: bool,
}

/// A header-only admission check: `Some(refusal)` is sent instead of serving the request,
/// `None` admits it.
pub type Guard = Arc<dyn Fn(&HeaderMap) -> Option<Response> + Send + Sync>;

/// A guard on one route, for `http::function_layers`.
#[derive(Clone)]
pub struct GuardedRoute {
    pub route: RouteInfo,
    pub guard: Guard,
}

impl std::fmt::Debug for GuardedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuardedRoute({} {})", self.route.method, self.route.path)
    }
}

/// Builds a function's routes over its state `S`; [`RouteTable::with_state`] finishes it.
#[derive(Debug)]
pub struct RouteTable<S> {
    // Kept unrouted until `with_state`: whether a route is public is known only after it was
    // added (`.post(..).public()`), and public routes go into a router of their own.
    entries: Vec<(RouteInfo, MethodRouter<S>)>,
    guards: Vec<GuardedRoute>,
}

impl<S: Clone + Send + Sync + 'static> Default for RouteTable<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> RouteTable<S> {
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            guards: Vec::new(),
        }
    }

    /// `GET path`.
    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("GET", path, axum::routing::get(handler))
    }

    /// `POST path`.
    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("POST", path, axum::routing::post(handler))
    }

    /// Guards the route added last: `guard` sees its headers before anything else runs.
    pub fn guarded(mut self, guard: Guard) -> Self {
        if let Some((route, _)) = self.entries.last() {
            self.guards.push(GuardedRoute {
                route: *route,
                guard,
            });
        }
        self
    }

    /// Marks the route added last as public: served on the public listener too, to anyone who
    /// can reach it. Only for routes that carry their own credentials (a webhook signature, a
    /// collector token), since the operator credentials do not apply to them.
    pub fn public(self) -> Self {
        self.public_if(true)
    }

    /// [`RouteTable::public`] when `public` holds (a route public only in some deployments).
    pub fn public_if(mut self, public: bool) -> Self {
        if let Some((route, _)) = self.entries.last_mut() {
            route.public = public;
            // Keep the guard's copy in step, so both describe the route alike.
            for g in &mut self.guards {
                if g.route.method == route.method && g.route.path == route.path {
                    g.route.public = public;
                }
            }
        }
        self
    }

    fn add(mut self, method: &'static str, path: &'static str, route: MethodRouter<S>) -> Self {
        let info = RouteInfo {
            method,
            path,
            public: false,
        };
        self.entries.push((info, route));
        self
    }

    /// The finished table, with the function's state applied.
    pub fn with_state(self, state: S) -> Routes {
        let mut all = Router::new();
        let mut public_paths: Vec<(&'static str, MethodRouter<S>)> = Vec::new();
        let mut infos = Vec::with_capacity(self.entries.len());
        for (info, route) in self.entries {
            if info.public {
                match public_paths.iter_mut().find(|(p, _)| *p == info.path) {
                    Some((_, methods)) => *methods = methods.clone().merge(route.clone()),
                    None => public_paths.push((info.path, route.clone())),
                }
            }
            // axum merges the method routers of one path, so GET and POST may share it.
            all = all.route(info.path, route);
            infos.push(info);
        }
        let mut public = Router::new();
        for (path, methods) in public_paths {
            // An operator method on a public path is as absent from the public listener as
            // an operator path: 404, not a 405 naming the methods that exist.
            public = public.route(path, methods.fallback(no_such_route));
        }
        Routes {
            infos,
            guards: self.guards,
            router: all.with_state(state.clone()),
            public: public.with_state(state),
        }
    }
}

async fn no_such_route() -> Response {
    crate::error::error_response(axum::http::StatusCode::NOT_FOUND, "no such route")
}

/// A function's finished routes: what it serves and how it is described.
#[derive(Debug)]
pub struct Routes {
    infos: Vec<RouteInfo>,
    guards: Vec<GuardedRoute>,
    /// Every route (the operator listener, Lambda).
    router: Router,
    /// The public routes alone (the public listener): the others are not in it at all.
    public: Router,
}

impl Routes {
    pub fn infos(&self) -> &[RouteInfo] {
        &self.infos
    }

    /// Every route and the guards.
    pub fn into_parts(self) -> (Router, Vec<GuardedRoute>) {
        (self.router, self.guards)
    }

    /// Every route, the public routes alone, and the guards (for serving both listeners).
    pub fn into_edges(self) -> (Router, Router, Vec<GuardedRoute>) {
        (self.router, self.public, self.guards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_operator_routes_unless_marked_public() {
        let routes = RouteTable::new()
            .post("/hook", || async { "ok" })
            .public()
            .get("/status", || async { "ok" })
            .post("/push", || async { "ok" })
            .public_if(false)
            .with_state(());
        let public: Vec<_> = routes
            .infos()
            .iter()
            .map(|r| (r.method, r.path, r.public))
            .collect();
        assert_eq!(
            public,
            [
                ("POST", "/hook", true),
                ("GET", "/status", false),
                ("POST", "/push", false)
            ]
        );
    }
}
