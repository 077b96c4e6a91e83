//! webhook-gitops settings (`[webhook_gitops]` in `hub.toml`, or the environment).

use hub_runtime::{ConfigError, Source};
use secrecy::SecretString;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct GitopsConfig {
    /// `GITHUB_WEBHOOK_SECRET` (or `_FILE`). Without it every delivery is refused with 503.
    pub secret: Option<SecretString>,
    /// `GITOPS_BASE_DIR` (default `/srv/gitops`): checkouts live at `<base>/<repository name>`.
    pub base_dir: PathBuf,
    /// `GITOPS_BRANCH` (default `main`): the branch that is deployed.
    pub branch: String,
    /// `GITOPS_GIT` (default `git`): the git executable.
    pub git: PathBuf,
    /// `GITOPS_GIT_TIMEOUT_SECS` (default 120): bound on each git command (fetch included).
    pub git_timeout: Duration,
    /// `GITOPS_RELOAD_TIMEOUT_SECS` (default 300): bound on the reload hook.
    pub reload_timeout: Duration,
    /// `[webhook_gitops.reload]` in `hub.toml`: repository → command (array of arguments, or a
    /// string split on whitespace). Takes precedence over the command in the `.gitops` marker.
    pub reload_hooks: HashMap<String, Vec<String>>,
    /// Repositories whose own `.gitops` may name the reload command
    /// (`[webhook_gitops.repos.NAME] allow_repo_command = true`). For every other repository a
    /// command in the marker is not run: whoever can push would otherwise run code here.
    pub repo_commands: HashSet<String>,
    /// The environment reload hooks get: `PATH`, `HOME` and `LANG` of the gateway (read once at
    /// start), nothing else of it — its secrets stay out — plus the `GITOPS_*` variables.
    pub hook_env: Vec<(String, String)>,
}

/// Variables of the gateway's environment a reload hook inherits.
const HOOK_INHERITS: [&str; 3] = ["PATH", "HOME", "LANG"];

const SECTION: &str = "webhook_gitops";

impl GitopsConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let key = |field: &str| format!("{SECTION}.{field}");
        let branch: String = src.get_or(&key("branch"), "GITOPS_BRANCH", "main".to_owned())?;
        if branch.is_empty() || branch.starts_with('-') || branch.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                setting: "GITOPS_BRANCH".into(),
                message: format!("{branch:?} is not a usable branch name"),
            });
        }
        let mut reload_hooks = HashMap::new();
        if let Some(table) = src.table(&key("reload")) {
            for (repo, value) in table {
                let argv: Vec<String> = match value {
                    toml::Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                if argv.is_empty() {
                    return Err(ConfigError::Invalid {
                        setting: format!("{SECTION}.reload.{repo}"),
                        message: "expected a command: a non-empty string or array of strings"
                            .into(),
                    });
                }
                reload_hooks.insert(repo.clone(), argv);
            }
        }
        let mut repo_commands = HashSet::new();
        if let Some(repos) = src.table(&key("repos")) {
            for (repo, settings) in repos {
                match settings.get("allow_repo_command") {
                    None => {}
                    Some(toml::Value::Boolean(true)) => {
                        repo_commands.insert(repo.clone());
                    }
                    Some(toml::Value::Boolean(false)) => {}
                    Some(_) => {
                        return Err(ConfigError::Invalid {
                            setting: format!("{SECTION}.repos.{repo}.allow_repo_command"),
                            message: "expected true or false".into(),
                        });
                    }
                }
            }
        }
        let hook_env = HOOK_INHERITS
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| ((*name).to_owned(), v)))
            .collect();
        Ok(Self {
            secret: src.secret(&key("secret"), "GITHUB_WEBHOOK_SECRET")?,
            base_dir: src.get_or(
                &key("base_dir"),
                "GITOPS_BASE_DIR",
                PathBuf::from("/srv/gitops"),
            )?,
            branch,
            git: src.get_or(&key("git"), "GITOPS_GIT", PathBuf::from("git"))?,
            git_timeout: src.seconds_or(
                &key("git_timeout_secs"),
                "GITOPS_GIT_TIMEOUT_SECS",
                120,
            )?,
            reload_timeout: src.seconds_or(
                &key("reload_timeout_secs"),
                "GITOPS_RELOAD_TIMEOUT_SECS",
                300,
            )?,
            reload_hooks,
            repo_commands,
            hook_env,
        })
    }
}
