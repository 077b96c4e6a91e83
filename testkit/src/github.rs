//! A stand-in for GitHub's REST API issues listing, for second-brain's tests: there is no
//! GitHub here, so this local HTTP server answers as `api.github.com` does and records every
//! request it gets.
//!
//! Shapes come from GitHub itself: each issue is the issue object of `@octokit/fixtures`'
//! recorded `paginate-issues` scenario (installed by `make test-deps`) with the test's number,
//! title, body, labels and dates put in; the response headers are that scenario's recorded
//! ones. Like GitHub it
//! - serves `GET /repos/{owner}/{repo}/issues` and `GET /repositories/{id}/issues` with
//!   `labels` (all must match), `state` (`open`, `closed`, `all`), `sort=created`,
//!   `direction`, `per_page` (default 30, at most 100) and `page`;
//! - paginates with `Link` (`prev`, `next`, `last`, `first`) pointing at
//!   `/repositories/{id}/issues`, as GitHub's own next links do;
//! - counts `x-ratelimit-remaining` down from 5000 with `x-ratelimit-reset` an hour ahead.
//!
//! Faults, taken one per request in the order queued ([`GithubApi::queue`]): a secondary rate
//! limit (403 with `retry-after`), a primary one exhausted on a good answer
//! (`x-ratelimit-remaining: 0`), a 500, a slow answer.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The repository id GitHub's next links use (`/repositories/{id}/issues`).
pub const REPO_ID: u64 = 1000;

/// What the stand-in does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A normal answer (to let a fault hit a later request).
    None,
    /// 403, GitHub's secondary rate limit: `retry-after: secs`.
    RetryAfter(u64),
    /// A good answer with `x-ratelimit-remaining: 0`, the window resetting in `secs`.
    Exhausted(u64),
    /// 500, as GitHub answers when it fails.
    ServerError,
    /// A good answer, after this long.
    Slow(Duration),
}

/// One request the stand-in received, in order.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/repos/o/r/issues?labels=journal&page=2`.
    pub target: String,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
    pub status: u16,
}

/// A journal issue to serve.
#[derive(Debug, Clone)]
pub struct NewIssue {
    pub title: String,
    pub body: Option<String>,
    pub labels: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub closed: bool,
    pub pull_request: bool,
}

impl NewIssue {
    /// An open issue with label `journal`, created at the start of its title's day when the
    /// title is a date (now otherwise).
    pub fn journal(title: &str, body: &str) -> Self {
        let created_at = chrono::NaiveDate::parse_from_str(title, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(7, 30, 0))
            .map(|t| t.and_utc())
            .unwrap_or_else(chrono::Utc::now);
        Self {
            title: title.into(),
            body: Some(body.into()),
            labels: vec!["journal".into()],
            created_at,
            closed: false,
            pull_request: false,
        }
    }
}

#[derive(Debug)]
struct Inner {
    owner_repo: String,
    issues: Vec<(u64, NewIssue)>,
    faults: VecDeque<Fault>,
    recorded: Vec<Recorded>,
    remaining: u64,
}

/// The running stand-in; stops when dropped.
#[derive(Debug)]
pub struct GithubApi {
    /// Base URL to give as `GITHUB_API_URL`, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    template: Arc<Fixture>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GithubApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct Fixture {
    issue: Value,
    headers: Vec<(String, String)>,
}

fn fixture_path() -> PathBuf {
    let deps = std::env::var_os("TEST_DEPS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.test-deps")));
    deps.join("node_modules/@octokit/fixtures/scenarios/api.github.com/paginate-issues/normalized-fixture.json")
}

fn load_fixture() -> Fixture {
    let path = fixture_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}); `make test-deps` installs @octokit/fixtures",
            path.display()
        )
    });
    let recorded: Value = serde_json::from_str(&text).expect("octokit fixture is JSON");
    let first = &recorded[0];
    let issue = first["response"][0].clone();
    assert!(
        issue["number"].is_u64(),
        "the fixture's first answer is a list of issues"
    );
    let skip = [
        "content-length",
        "date",
        "link",
        "connection",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-used",
    ];
    let headers = first["headers"]
        .as_object()
        .expect("recorded headers")
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    Fixture { issue, headers }
}

impl GithubApi {
    /// Starts serving the issues of `owner_repo` (none yet) on a free port.
    pub async fn start(owner_repo: &str) -> Self {
        let template = Arc::new(load_fixture());
        let inner = Arc::new(Mutex::new(Inner {
            owner_repo: owner_repo.into(),
            issues: Vec::new(),
            faults: VecDeque::new(),
            recorded: Vec::new(),
            remaining: 5000,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the GitHub stand-in");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(answer).with_state(Served {
            inner: inner.clone(),
            template: template.clone(),
            url: url.clone(),
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            inner,
            template,
            task,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an issue; returns its number (1, 2, … in order added).
    pub fn add(&self, issue: NewIssue) -> u64 {
        let mut inner = self.lock();
        let number = inner.issues.len() as u64 + 1;
        inner.issues.push((number, issue));
        number
    }

    /// Queues faults for the next requests, one each.
    pub fn queue(&self, faults: &[Fault]) {
        self.lock().faults.extend(faults.iter().copied());
    }

    /// Queued faults no request has taken yet (a request takes its fault as it arrives, before
    /// it is answered and recorded).
    pub fn faults_left(&self) -> usize {
        self.lock().faults.len()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().recorded.clone()
    }

    /// The issue object served for issue `number` (for asserting shapes).
    pub fn issue_json(&self, number: u64) -> Option<Value> {
        let inner = self.lock();
        let (n, i) = inner.issues.iter().find(|(n, _)| *n == number)?;
        Some(render(&self.template.issue, &inner.owner_repo, *n, i))
    }
}

#[derive(Clone)]
struct Served {
    inner: Arc<Mutex<Inner>>,
    template: Arc<Fixture>,
    url: String,
}

fn render(template: &Value, owner_repo: &str, number: u64, i: &NewIssue) -> Value {
    let api = format!("https://api.github.com/repos/{owner_repo}");
    let mut v = template.clone();
    let at = i.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    v["url"] = json!(format!("{api}/issues/{number}"));
    v["repository_url"] = json!(api);
    v["labels_url"] = json!(format!("{api}/issues/{number}/labels{{/name}}"));
    v["comments_url"] = json!(format!("{api}/issues/{number}/comments"));
    v["events_url"] = json!(format!("{api}/issues/{number}/events"));
    v["timeline_url"] = json!(format!("{api}/issues/{number}/timeline"));
    v["html_url"] = json!(format!("https://github.com/{owner_repo}/issues/{number}"));
    v["id"] = json!(1_000_000 + number);
    v["number"] = json!(number);
    v["title"] = json!(i.title);
    v["body"] = json!(i.body);
    v["state"] = json!(if i.closed { "closed" } else { "open" });
    v["closed_at"] = if i.closed { json!(at) } else { Value::Null };
    v["created_at"] = json!(at);
    v["updated_at"] = json!(at);
    v["comments"] = json!(0);
    v["labels"] = i
        .labels
        .iter()
        .enumerate()
        .map(|(k, name)| {
            json!({"id": 2000 + k, "node_id": "MDU6TGFiZWwx", "url": format!("{api}/labels/{name}"),
                   "name": name, "color": "ededed", "default": false, "description": null})
        })
        .collect();
    if i.pull_request {
        v["pull_request"] = json!({
            "url": format!("{api}/pulls/{number}"),
            "html_url": format!("https://github.com/{owner_repo}/pull/{number}"),
            "diff_url": format!("https://github.com/{owner_repo}/pull/{number}.diff"),
            "patch_url": format!("https://github.com/{owner_repo}/pull/{number}.patch"),
            "merged_at": null
        });
    }
    v
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    Some(headers.get(name)?.to_str().ok()?.to_owned())
}

async fn answer(State(s): State<Served>, req: Request) -> Response {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let mut record = Recorded {
        method: req.method().to_string(),
        target: target.clone(),
        authorization: header(req.headers(), "authorization"),
        user_agent: header(req.headers(), "user-agent"),
        accept: header(req.headers(), "accept"),
        status: 0,
    };
    let fault = s
        .inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .faults
        .pop_front();
    if let Some(Fault::Slow(d)) = fault {
        tokio::time::sleep(d).await;
    }
    let resp = respond(&s, &req, fault);
    record.status = resp.status().as_u16();
    s.inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .recorded
        .push(record);
    resp
}

fn respond(s: &Served, req: &Request, fault: Option<Fault>) -> Response {
    let reset = chrono::Utc::now().timestamp() + 3600;
    let mut inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
    let mut headers = HeaderMap::new();
    for (k, v) in &s.template.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            headers.insert(k, v);
        }
    }
    let set = |headers: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    match fault {
        Some(Fault::RetryAfter(secs)) => {
            set(&mut headers, "retry-after", secs.to_string());
            set(
                &mut headers,
                "x-ratelimit-remaining",
                inner.remaining.to_string(),
            );
            set(&mut headers, "x-ratelimit-reset", reset.to_string());
            let body = json!({
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:000000:000000:00000000.",
                "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
            });
            return (StatusCode::FORBIDDEN, headers, axum::Json(body)).into_response();
        }
        Some(Fault::ServerError) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                headers,
                axum::Json(json!({"message": "Server Error"})),
            )
                .into_response();
        }
        _ => {}
    }
    inner.remaining = inner.remaining.saturating_sub(1);
    let (remaining, reset) = match fault {
        Some(Fault::Exhausted(secs)) => (0, chrono::Utc::now().timestamp() + secs as i64),
        _ => (inner.remaining, reset),
    };
    set(&mut headers, "x-ratelimit-remaining", remaining.to_string());
    set(&mut headers, "x-ratelimit-reset", reset.to_string());
    set(
        &mut headers,
        "x-ratelimit-used",
        (5000 - inner.remaining).to_string(),
    );

    let path = req.uri().path();
    let by_name = format!("/repos/{}/issues", inner.owner_repo);
    let by_id = format!("/repositories/{REPO_ID}/issues");
    if req.method() != axum::http::Method::GET || (path != by_name && path != by_id) {
        let body =
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"});
        return (StatusCode::NOT_FOUND, headers, axum::Json(body)).into_response();
    }
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let labels: Vec<&str> = get("labels")
        .map(|l| l.split(',').filter(|l| !l.is_empty()).collect())
        .unwrap_or_default();
    let state = get("state").unwrap_or("open");
    let per_page = get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let ascending = get("direction") == Some("asc");
    let mut matching: Vec<&(u64, NewIssue)> = inner
        .issues
        .iter()
        .filter(|(_, i)| labels.iter().all(|l| i.labels.iter().any(|il| il == l)))
        .filter(|(_, i)| match state {
            "all" => true,
            "closed" => i.closed,
            _ => !i.closed,
        })
        .collect();
    matching.sort_by_key(|(n, i)| (i.created_at, *n));
    if !ascending {
        matching.reverse();
    }
    let last = matching.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(n, i)| render(&s.template.issue, &inner.owner_repo, *n, i))
        .collect();
    let link_to = |p: usize| {
        let q: Vec<String> = query
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .chain(std::iter::once(format!("page={p}")))
            .collect();
        format!("<{}{by_id}?{}>", s.url, q.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link_to(page - 1)));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", link_to(page + 1)));
        links.push(format!("{}; rel=\"last\"", link_to(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link_to(1)));
    }
    if !links.is_empty() {
        set(&mut headers, "link", links.join(", "));
    }
    (StatusCode::OK, headers, axum::Json(Value::Array(items))).into_response()
}
