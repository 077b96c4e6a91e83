//! The GitHub REST calls second-brain makes: one listing, `GET /repos/{repo}/issues?labels=…&
//! state=all&per_page=100&sort=created&direction=desc`, followed page by page through
//! `Link: <…>; rel="next"`. The listing carries each issue's full body, so no call per issue
//! is needed (a tenth of the requests against the rate limit).
//!
//! Rate limits (GitHub's documented behaviour): a 403 or 429 with `retry-after` means wait that
//! many seconds; one with `x-ratelimit-remaining: 0` means wait until `x-ratelimit-reset` (epoch
//! seconds). A page answered with `remaining: 0` makes the client wait before asking for the
//! next. Each wait must fit in `GITHUB_MAX_WAIT_SECS`, or the run stops saying when to come back;
//! at most [`MAX_RATE_RETRIES`] waits per request. Any other non-2xx ends the run: the next
//! scheduled run starts over, which is safe because storing is idempotent.

use crate::config::BrainConfig;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, USER_AGENT};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::time::Duration;
use url::Url;

/// Retries of one request after rate-limit waits; beyond them the run stops.
pub const MAX_RATE_RETRIES: u32 = 3;
/// Pages followed at most (100 issues each): a `Link` loop must not run forever.
pub const MAX_PAGES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub request failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("GitHub timed out after {0:?} (GITHUB_TIMEOUT_SECS)")]
    Timeout(Duration),
    #[error("GitHub answered {status} for page {page}: {message}")]
    Status {
        status: StatusCode,
        page: usize,
        message: String,
    },
    #[error(
        "GitHub rate limit: retry in {wait_secs} s, more than GITHUB_MAX_WAIT_SECS ({max_secs} s); stopped"
    )]
    RateLimited { wait_secs: u64, max_secs: u64 },
    #[error("GitHub rate limit still hit after {MAX_RATE_RETRIES} waits; stopped")]
    RateLimitPersists,
    #[error("GitHub's Link header points away from GITHUB_API_URL; not followed")]
    ForeignLink,
    #[error("more than {MAX_PAGES} pages of issues")]
    TooManyPages,
    #[error("GitHub answered JSON that is not a list of issues: {0}")]
    Shape(#[source] reqwest::Error),
}

/// What the hub reads of an issue.
#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    /// Set on pull requests, which the issues listing includes.
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
}

/// A client for one repository's issues.
#[derive(Debug, Clone)]
pub struct Github {
    http: reqwest::Client,
    cfg: BrainConfig,
}

impl Github {
    pub fn new(cfg: BrainConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // The token must not follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { http, cfg }
    }

    fn first_page(&self, repo: &str) -> Url {
        let mut url = self.cfg.api_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/repos/{repo}/issues"));
        url.query_pairs_mut()
            .clear()
            .append_pair("labels", &self.cfg.label)
            .append_pair("state", "all")
            .append_pair("per_page", "100")
            .append_pair("sort", "created")
            .append_pair("direction", "desc");
        url
    }

    /// Every issue with the journal label, newest first, pull requests left out.
    pub async fn journal_issues(&self, repo: &str) -> Result<Vec<Issue>, GithubError> {
        let mut next = Some(self.first_page(repo));
        let mut issues = Vec::new();
        let mut page = 0;
        while let Some(url) = next.take() {
            page += 1;
            if page > MAX_PAGES {
                return Err(GithubError::TooManyPages);
            }
            let resp = self.get(&url, page).await?;
            next = next_link(resp.headers())
                .map(|link| self.same_origin(&link))
                .transpose()?;
            let headers = resp.headers().clone();
            let batch: Vec<Issue> = resp.json().await.map_err(|e| self.classify(e, true))?;
            issues.extend(batch.into_iter().filter(|i| i.pull_request.is_none()));
            if next.is_some() {
                if let Some(wait) = exhausted_wait(&headers) {
                    self.pause(wait).await?;
                }
            }
        }
        Ok(issues)
    }

    fn same_origin(&self, link: &str) -> Result<Url, GithubError> {
        let url = Url::parse(link).map_err(|_| GithubError::ForeignLink)?;
        if url.origin() == self.cfg.api_url.origin() {
            Ok(url)
        } else {
            Err(GithubError::ForeignLink)
        }
    }

    fn classify(&self, e: reqwest::Error, body: bool) -> GithubError {
        if e.is_timeout() {
            GithubError::Timeout(self.cfg.timeout)
        } else if body && e.is_decode() {
            GithubError::Shape(e)
        } else {
            GithubError::Http(e)
        }
    }

    async fn pause(&self, wait: Duration) -> Result<(), GithubError> {
        if wait > self.cfg.max_wait {
            return Err(GithubError::RateLimited {
                wait_secs: wait.as_secs(),
                max_secs: self.cfg.max_wait.as_secs(),
            });
        }
        tracing::warn!(
            wait_secs = wait.as_secs(),
            "GitHub rate limit reached; waiting"
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// One GET, waiting out rate limits within the bound.
    async fn get(&self, url: &Url, page: usize) -> Result<reqwest::Response, GithubError> {
        let mut waits = 0;
        loop {
            let mut req = self
                .http
                .get(url.clone())
                .header(ACCEPT, "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
                .header(USER_AGENT, "observability-hub-second-brain");
            if let Some(token) = &self.cfg.token {
                req = req.header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()));
            }
            let resp = req.send().await.map_err(|e| self.classify(e, false))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            let limited = status == StatusCode::TOO_MANY_REQUESTS
                || (status == StatusCode::FORBIDDEN
                    && (resp.headers().contains_key("retry-after")
                        || remaining(resp.headers()) == Some(0)));
            if limited {
                let wait = retry_after(resp.headers())
                    .or_else(|| exhausted_wait(resp.headers()))
                    .unwrap_or(Duration::from_secs(60));
                if waits == MAX_RATE_RETRIES {
                    return Err(GithubError::RateLimitPersists);
                }
                waits += 1;
                self.pause(wait).await?;
                continue;
            }
            // GitHub's error bodies are `{"message": …}`; only that short text is kept.
            let message = resp
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["message"].as_str().map(|m| m.chars().take(200).collect()))
                .unwrap_or_default();
            return Err(GithubError::Status {
                status,
                page,
                message,
            });
        }
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn remaining(headers: &HeaderMap) -> Option<u64> {
    header_u64(headers, "x-ratelimit-remaining")
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, "retry-after").map(Duration::from_secs)
}

/// With no requests left, how long until `x-ratelimit-reset` (epoch seconds).
fn exhausted_wait(headers: &HeaderMap) -> Option<Duration> {
    if remaining(headers) != Some(0) {
        return None;
    }
    let reset = header_u64(headers, "x-ratelimit-reset")?;
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    // One second more: the window ends at the reset second, not before it.
    Some(Duration::from_secs(reset.saturating_sub(now) + 1))
}

/// The `rel="next"` target of a `Link` header (RFC 8288).
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("link")?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("rel="))
            .any(|rel| {
                rel.trim_matches('"')
                    .split_whitespace()
                    .any(|r| r == "next")
            })
            .then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with_link(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("link", HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn next_link_is_found_among_the_others() {
        // GitHub's own header of a middle page (from @octokit/fixtures, paginate-issues).
        let h = with_link(
            "<https://api.github.com/repositories/1000/issues?per_page=3&page=2>; rel=\"prev\", \
             <https://api.github.com/repositories/1000/issues?per_page=3&page=4>; rel=\"next\", \
             <https://api.github.com/repositories/1000/issues?per_page=3&page=5>; rel=\"last\"",
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/repositories/1000/issues?per_page=3&page=4")
        );
        let last = with_link(
            "<https://x/issues?page=4>; rel=\"prev\", <https://x/issues?page=1>; rel=\"first\"",
        );
        assert_eq!(next_link(&last), None);
        assert_eq!(
            next_link(&with_link("<https://x/a>; rel=\"next last\"")).as_deref(),
            Some("https://x/a")
        );
        assert_eq!(next_link(&with_link("garbage")), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
