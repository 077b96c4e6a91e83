//! The route audit (#15): every route of every function and of the gateway, enumerated from
//! `/api/functions` and the gateway's own list, checked over real HTTP against both listeners —
//! the public one answers 404 for each operator route, a funnelled request to an operator
//! route is refused and counted, and with an operator token every operator route refuses
//! anonymous requests while the public routes keep their own credentials.

mod common;

use common::{Backend, Setup, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

const OPERATOR_TOKEN: &str = "test-operator-token";

/// One route, as `/api/functions` or the gateway's list declares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Route {
    method: String,
    path: String,
    public: bool,
}

impl Route {
    /// The path with each `{param}` filled in, so the request matches the route.
    fn concrete(&self) -> String {
        self.path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn method(&self) -> Method {
        Method::from_bytes(self.method.as_bytes()).expect("HTTP method")
    }

    fn probe(&self) -> bool {
        local_gateway::edge::PROBES.contains(&self.path.as_str())
    }
}

/// Every function with everything that decides its routes configured: webhook-gitops and
/// metrics-flush (whose push is public only with a collector token).
async fn full_setup() -> Setup {
    Setup::new(Backend::Sqlite)
        .await
        .with(webhook_gitops::testing::env())
        .with(metrics_flush::testing::env())
}

/// Every route: each function's from `/api/functions` (asked with `auth`), the gateway's own.
async fn all_routes(app: &TestApp, auth: Option<&str>) -> Vec<Route> {
    let mut req = app.client.get(app.url("/api/functions"));
    if let Some(token) = auth {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("GET /api/functions");
    assert_eq!(resp.status(), 200);
    let functions: Value = resp.json().await.expect("JSON");
    let mut routes: Vec<Route> = functions
        .as_array()
        .expect("list of functions")
        .iter()
        .flat_map(|f| f["routes"].as_array().expect("routes").iter())
        .map(|r| Route {
            method: r["method"].as_str().expect("method").to_owned(),
            path: r["path"].as_str().expect("path").to_owned(),
            public: r["public"].as_bool().expect("public is a bool"),
        })
        .collect();
    let own = local_gateway::api::gateway_routes();
    assert!(own.len() >= 8, "{own:?}");
    routes.extend(own.iter().map(|r| Route {
        method: r.method.to_owned(),
        path: r.path.to_owned(),
        public: r.public,
    }));
    routes.sort();
    routes
}

fn public_routes(routes: &[Route]) -> Vec<(&str, &str)> {
    routes
        .iter()
        .filter(|r| r.public)
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect()
}

/// A request for `route` at `base` (a listener's `http://host:port`), with a JSON body on POST.
fn request(app: &TestApp, base: &str, route: &Route) -> reqwest::RequestBuilder {
    let req = app
        .client
        .request(route.method(), format!("{base}{}", route.concrete()));
    if route.method == "POST" {
        req.header("content-type", "application/json").body("{}")
    } else {
        req
    }
}

async fn status_and_json(req: reqwest::RequestBuilder, what: &str) -> (u16, Value, String) {
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, challenge)
}

/// A signed `ping` delivery at `base`.
async fn ping(app: &TestApp, base: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"zen": "Design for failure."})).expect("json");
    let mut req = app
        .client
        .post(format!("{base}{}", webhook_gitops::WEBHOOK_PATH))
        .header("content-type", "application/json")
        .header("x-github-event", "ping")
        .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
        .header("x-hub-signature-256", webhook_gitops::testing::sign(&body))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, json, _) = status_and_json(req, "ping").await;
    (status, json)
}

fn base(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

#[tokio::test]
async fn public_listener_serves_the_public_routes_and_nothing_else() {
    let setup = full_setup().await;
    let app = TestApp::spawn(&setup).await;
    let routes = all_routes(&app, None).await;
    // The issue's contract: these two, and only these, are public.
    assert_eq!(
        public_routes(&routes),
        [("POST", "/api/metrics"), ("POST", "/api/webhook/gitops")],
        "{routes:#?}"
    );
    let public = base(app.public_addr);
    for route in routes.iter().filter(|r| !r.public) {
        let (status, body, _) = status_and_json(request(&app, &public, route), &route.path).await;
        assert_eq!(status, 404, "public listener serves {route:?}: {body}");
        assert_eq!(body["error"], "no such route", "{route:?}");
        assert!(body["request_id"].is_string(), "{body}");
    }
    // Public routes are served there, behind their own credentials.
    for route in routes.iter().filter(|r| r.public) {
        let (status, body, _) = status_and_json(request(&app, &public, route), &route.path).await;
        assert_eq!(status, 401, "{route:?} unsigned / without a token: {body}");
    }
    let (status, body) = ping(&app, &public, &[]).await;
    assert_eq!(status, 200, "{body}");
    // Unknown paths and other methods on a public path are as absent.
    for (method, path) in [
        (Method::GET, webhook_gitops::WEBHOOK_PATH),
        (Method::GET, "/no/such/route"),
        (Method::DELETE, "/api/metrics"),
    ] {
        let resp = app
            .client
            .request(method.clone(), format!("{public}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 404, "{method} {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_push_is_an_operator_route_without_a_collector_token() {
    let setup = Setup::new(Backend::Sqlite)
        .await
        .with(webhook_gitops::testing::env());
    let app = TestApp::spawn(&setup).await;
    let routes = all_routes(&app, None).await;
    assert_eq!(
        public_routes(&routes),
        [("POST", "/api/webhook/gitops")],
        "{routes:#?}"
    );
    let push = app
        .client
        .post(app.public_url(metrics_flush::PUSH_PATH))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(push.status(), 404);
    app.stop().await;
}

/// `hub_funnel_refused_total` on the operator listener's `/metrics`.
async fn funnel_refused(app: &TestApp) -> u64 {
    let text = app.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix("hub_funnel_refused_total "))
        .unwrap_or_else(|| panic!("no hub_funnel_refused_total in {text}"))
        .parse()
        .expect("a count")
}

#[tokio::test]
async fn funnelled_requests_to_operator_routes_are_refused_and_counted() {
    let setup = full_setup().await;
    let app = TestApp::spawn(&setup).await;
    let routes = all_routes(&app, None).await;
    assert_eq!(funnel_refused(&app).await, 0, "exposed from the start");
    let operator = base(app.addr);
    let mut refused = 0;
    for route in routes.iter().filter(|r| !r.public) {
        let req = request(&app, &operator, route).header("tailscale-funnel-request", "?1");
        let (status, body, _) = status_and_json(req, &route.path).await;
        assert_eq!(status, 403, "{route:?}: {body}");
        assert_eq!(
            body["error"], "operator routes are not served through Tailscale Funnel",
            "{route:?}"
        );
        refused += 1;
    }
    // Any value counts: tailscaled's is `?1`, but the header's presence is what marks it.
    let req = app
        .client
        .get(app.url("/no/such/route"))
        .header("tailscale-funnel-request", "");
    let (status, _, _) = status_and_json(req, "unmatched").await;
    assert_eq!(status, 403);
    refused += 1;
    assert_eq!(funnel_refused(&app).await, refused);
    // Public routes take funnelled requests, on either listener.
    let funnel = [("tailscale-funnel-request", "?1")];
    assert_eq!(ping(&app, &operator, &funnel).await.0, 200);
    assert_eq!(ping(&app, &base(app.public_addr), &funnel).await.0, 200);
    assert_eq!(funnel_refused(&app).await, refused);
    // Nothing refused became a run.
    assert!(app.runs("reading-sync").await.is_empty());
    app.stop().await;
}

/// Credentials a request carries.
#[derive(Debug, Clone, Copy)]
enum Auth {
    Anonymous,
    Bearer(&'static str),
    Basic(&'static str, &'static str),
    /// An `Authorization` header as given.
    Raw(&'static str),
}

impl Auth {
    fn apply(self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Anonymous => req,
            Auth::Bearer(token) => req.bearer_auth(token),
            Auth::Basic(user, password) => req.basic_auth(user, Some(password)),
            Auth::Raw(value) => req.header("authorization", value),
        }
    }
}

#[tokio::test]
async fn an_operator_token_guards_every_operator_route() {
    let setup = full_setup().await.set("HUB_OPERATOR_TOKEN", OPERATOR_TOKEN);
    let app = TestApp::spawn(&setup).await;
    let routes = all_routes(&app, Some(OPERATOR_TOKEN)).await;
    let operator = base(app.addr);
    let wrong = [
        Auth::Anonymous,
        Auth::Bearer("not-the-token"),
        Auth::Basic("operator", "not-the-token"),
        Auth::Basic(OPERATOR_TOKEN, ""),
        Auth::Raw("Basic test-operator-token"),
        Auth::Raw("Token test-operator-token"),
    ];
    let mut checked = 0;
    for route in routes.iter().filter(|r| !r.public && !r.probe()) {
        for auth in wrong {
            let req = auth.apply(request(&app, &operator, route));
            let (status, body, challenge) = status_and_json(req, &route.path).await;
            assert_eq!(status, 401, "{route:?} with {auth:?}: {body}");
            assert_eq!(challenge, r#"Basic realm="hub-gateway""#, "{route:?}");
            assert!(body["error"].is_string(), "{body}");
            assert!(body["request_id"].is_string(), "{body}");
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} operator routes");
    // The right token, as a bearer or as Basic with any user, gets through.
    for route in routes.iter().filter(|r| !r.public) {
        for auth in [
            Auth::Bearer(OPERATOR_TOKEN),
            Auth::Basic("operator", OPERATOR_TOKEN),
            Auth::Basic("", OPERATOR_TOKEN),
        ] {
            let req = auth.apply(request(&app, &operator, route));
            let (status, body, _) = status_and_json(req, &route.path).await;
            assert!(
                status != 401 && status != 403 && status != 404,
                "{route:?} with {auth:?}: {status} {body}"
            );
        }
    }
    let page = app
        .client
        .get(app.url("/"))
        .basic_auth("me", Some(OPERATOR_TOKEN))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("(public)"));
    // Probes stay open (/readyz answers 503 here: webhook-gitops has no checkouts directory).
    for probe in local_gateway::edge::PROBES {
        let resp = app.client.get(app.url(probe)).send().await.expect("probe");
        assert_ne!(resp.status(), 401, "{probe}");
        let body: Value = resp.json().await.expect("JSON");
        assert!(body["status"].is_string(), "{probe}: {body}");
    }
    let resp = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    // An unknown path gives nothing away either.
    let resp = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn public_routes_keep_their_own_credentials_under_an_operator_token() {
    let setup = full_setup().await.set("HUB_OPERATOR_TOKEN", OPERATOR_TOKEN);
    let app = TestApp::spawn(&setup).await;
    for listener in [base(app.addr), base(app.public_addr)] {
        assert_eq!(ping(&app, &listener, &[]).await.0, 200, "{listener}");
        let batch = json!({"samples": [{
            "time": chrono::Utc::now() - chrono::Duration::seconds(5),
            "host": "edge-test", "os": "Debian GNU/Linux 12",
            "metrics": {"cpu": {"total": 1.0}},
        }]});
        let push = |token: &str| {
            app.client
                .post(format!("{listener}{}", metrics_flush::PUSH_PATH))
                .bearer_auth(token)
                .json(&batch)
                .send()
        };
        let resp = push(metrics_flush::testing::TOKEN).await.expect("push");
        assert_eq!(resp.status(), 200, "{listener}");
        // The operator token is not the collector's.
        let resp = push(OPERATOR_TOKEN).await.expect("push");
        assert_eq!(resp.status(), 401, "{listener}");
    }
    app.stop().await;
}

#[tokio::test]
async fn operator_credentials_are_checked_before_the_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let setup = full_setup()
        .await
        .set("HUB_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .set("HUB_BODY_TIMEOUT_SECS", 30);
    let app = TestApp::spawn(&setup).await;
    // Headers promising a body that never comes: refused at once, not after the body deadline.
    let mut conn = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{",
        reading_sync::SYNC_PATH,
        app.addr
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("answered before the body arrived")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    let runs = app
        .gateway
        .ctx
        .runs
        .list(&hub_runtime::store::RunQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list runs");
    assert!(runs.is_empty(), "{runs:?}");
    app.stop().await;
}
