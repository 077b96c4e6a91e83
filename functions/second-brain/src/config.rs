//! Settings of second-brain, checked once at start.

use hub_runtime::{ConfigError, Source};
use secrecy::SecretString;
use std::time::Duration;
use url::Url;

/// Settings (`[second_brain]` in `hub.toml`, or the environment).
#[derive(Debug, Clone)]
pub struct BrainConfig {
    /// `owner/name`; without it the function is not configured.
    pub repo: Option<String>,
    pub label: String,
    /// The REST API's base, e.g. `https://api.github.com` or a GitHub Enterprise `…/api/v3`.
    pub api_url: Url,
    pub token: Option<SecretString>,
    /// Bound on each request, connect to last byte.
    pub timeout: Duration,
    /// Longest wait a rate limit may impose before the run gives up instead.
    pub max_wait: Duration,
}

pub const DEFAULT_API_URL: &str = "https://api.github.com";

fn invalid(setting: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        message,
    }
}

/// GitHub's rules for owner and repository names: letters, digits, `-`, `_`, `.`.
fn valid_repo(repo: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(repo.split_once('/'), Some((owner, name)) if ok(owner) && ok(name))
}

impl BrainConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let repo: Option<String> = src.get("second_brain.journal_repo", "JOURNAL_REPO")?;
        if let Some(r) = &repo {
            if !valid_repo(r) {
                return Err(invalid("JOURNAL_REPO", format!("{r:?} is not owner/name")));
            }
        }
        let label: String = src.get_or(
            "second_brain.journal_label",
            "JOURNAL_LABEL",
            "journal".into(),
        )?;
        if label.trim().is_empty() || label.contains(',') {
            return Err(invalid(
                "JOURNAL_LABEL",
                format!("{label:?} is not one label"),
            ));
        }
        let raw_url: String = src.get_or(
            "second_brain.github_api_url",
            "GITHUB_API_URL",
            DEFAULT_API_URL.into(),
        )?;
        let api_url = Url::parse(&raw_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                invalid(
                    "GITHUB_API_URL",
                    format!("{raw_url:?} is not an http(s) URL"),
                )
            })?;
        let timeout = src.seconds_or(
            "second_brain.github_timeout_secs",
            "GITHUB_TIMEOUT_SECS",
            10,
        )?;
        if !(1..=300).contains(&timeout.as_secs()) {
            return Err(invalid(
                "GITHUB_TIMEOUT_SECS",
                format!("{} is not 1–300 seconds", timeout.as_secs()),
            ));
        }
        let max_wait = src.seconds_or(
            "second_brain.github_max_wait_secs",
            "GITHUB_MAX_WAIT_SECS",
            60,
        )?;
        if max_wait.as_secs() > 3600 {
            return Err(invalid(
                "GITHUB_MAX_WAIT_SECS",
                format!("{} is more than 3600 seconds", max_wait.as_secs()),
            ));
        }
        Ok(Self {
            repo,
            label,
            api_url,
            token: src.secret("second_brain.github_token", "GITHUB_TOKEN")?,
            timeout,
            max_wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(env: &[(&str, &str)]) -> Result<BrainConfig, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        BrainConfig::from_source(&Source::from_parts(None, env).expect("source"))
    }

    #[test]
    fn defaults_match_the_old_job() {
        let cfg = config(&[("JOURNAL_REPO", "owner/journal")]).expect("valid");
        assert_eq!(cfg.repo.as_deref(), Some("owner/journal"));
        assert_eq!(cfg.label, "journal");
        assert_eq!(cfg.api_url.as_str(), "https://api.github.com/");
        assert!(cfg.token.is_none());
        assert_eq!(cfg.timeout, Duration::from_secs(10));
        assert_eq!(cfg.max_wait, Duration::from_secs(60));
        assert!(config(&[]).expect("valid").repo.is_none());
    }

    #[test]
    fn bad_settings_fail_start_naming_the_setting_without_echoing_the_token() {
        for repo in ["journal", "a/b/c", "../x", "owner/na me", "/x"] {
            let err = config(&[("JOURNAL_REPO", repo)]).expect_err(repo);
            assert!(err.to_string().contains("JOURNAL_REPO"), "{err}");
        }
        for url in ["ftp://x", "api.github.com", "http://"] {
            let err = config(&[("GITHUB_API_URL", url)]).expect_err(url);
            assert!(err.to_string().contains("GITHUB_API_URL"), "{err}");
        }
        for (k, v) in [
            ("GITHUB_TIMEOUT_SECS", "0"),
            ("GITHUB_TIMEOUT_SECS", "soon"),
            ("GITHUB_MAX_WAIT_SECS", "3601"),
            ("JOURNAL_LABEL", "a,b"),
        ] {
            let err = config(&[(k, v), ("GITHUB_TOKEN", "ghp_s3cret")]).expect_err(k);
            let text = err.to_string();
            assert!(text.contains(k) && !text.contains("ghp_s3cret"), "{text}");
        }
    }
}
