//! A function's routes, declared once: the same table yields the axum `Router` the gateway and
//! Lambda serve and the `RouteInfo` list `/api/functions` shows, so the two cannot drift.
//!
//! A route may carry a [`Guard`]: a check on the request's headers alone (a bearer token, say)
//! that the shared stack runs before anything else of the function — before a concurrency
//! slot is taken, the body is read or a run is recorded (see `http::function_layers`).

use axum::Router;
use axum::handler::Handler;
use axum::http::HeaderMap;
use axum::response::Response;
use std::sync::Arc;

/// One route a function serves, for `/api/functions` and the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
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
    infos: Vec<RouteInfo>,
    guards: Vec<GuardedRoute>,
    router: Router<S>,
}

impl<S: Clone + Send + Sync + 'static> Default for RouteTable<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> RouteTable<S> {
    pub fn new() -> Self {
        Self {
            infos: Vec::new(),
            guards: Vec::new(),
            router: Router::new(),
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
        if let Some(&route) = self.infos.last() {
            self.guards.push(GuardedRoute { route, guard });
        }
        self
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        route: axum::routing::MethodRouter<S>,
    ) -> Self {
        self.infos.push(RouteInfo { method, path });
        // axum merges the method routers of one path, so GET and POST may share it.
        self.router = self.router.route(path, route);
        self
    }

    /// The finished table, with the function's state applied.
    pub fn with_state(self, state: S) -> Routes {
        Routes {
            infos: self.infos,
            guards: self.guards,
            router: self.router.with_state(state),
        }
    }
}

/// A function's finished routes: what it serves and how it is described.
#[derive(Debug)]
pub struct Routes {
    infos: Vec<RouteInfo>,
    guards: Vec<GuardedRoute>,
    router: Router,
}

impl Routes {
    pub fn infos(&self) -> &[RouteInfo] {
        &self.infos
    }

    pub fn into_parts(self) -> (Router, Vec<GuardedRoute>) {
        (self.router, self.guards)
    }
}
