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
    /// `GITOPS_SYNC_INTERVAL_MS` (default 1000; 0: none): least time between the starts of two
    /// syncs of one repository. A push to a quiet repository syncs at once; pushes arriving
    /// while a sync runs wait for the follow-up, which starts no sooner than this after the
    /// last one did — so a flood of valid deliveries runs git once a second, not back to back.
    pub sync_interval: Duration,
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
    /// Who reload hooks run as: `[webhook_gitops.repos.NAME] run_as`, else `[webhook_gitops]
    /// run_as` / `GITOPS_RUN_AS`, else the gateway's own user.
    pub run_as: Option<HookUser>,
    pub repo_run_as: HashMap<String, HookUser>,
}

/// A system user reload hooks run as, resolved once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookUser {
    pub name: String,
    pub uid: u32,
    /// Primary group; the hook gets no supplementary groups (dropping root's is what lets a
    /// hook run as root's gateway be harmless).
    pub gid: u32,
    /// Given to the hook as `HOME`.
    pub home: PathBuf,
}

impl HookUser {
    /// Looks `name` up in the system's user database. Only a gateway running as root can
    /// switch to another user, so anything else is refused at start, not at the first push.
    pub fn resolve(setting: &str, name: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            setting: setting.to_owned(),
            message,
        };
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| invalid(format!("cannot look up user {name:?}: {e}")))?
            .ok_or_else(|| invalid(format!("no such user {name:?}")))?;
        let me = nix::unistd::geteuid();
        if !me.is_root() && me != user.uid {
            return Err(invalid(format!(
                "running hooks as {name:?} needs the gateway to run as root (it runs as uid {me})"
            )));
        }
        Ok(Self {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
        })
    }

    fn from_toml(setting: &str, value: &toml::Value) -> Result<Self, ConfigError> {
        match value.as_str() {
            Some(name) if !name.is_empty() => Self::resolve(setting, name),
            _ => Err(ConfigError::Invalid {
                setting: setting.to_owned(),
                message: "expected a user name".into(),
            }),
        }
    }
}

/// Variables of the gateway's environment a reload hook inherits.
const HOOK_INHERITS: [&str; 3] = ["PATH", "HOME", "LANG"];

const SECTION: &str = "webhook_gitops";

impl GitopsConfig {
    /// The user `repository`'s reload hook runs as (`None`: the gateway's).
    pub fn hook_user(&self, repository: &str) -> Option<&HookUser> {
        self.repo_run_as.get(repository).or(self.run_as.as_ref())
    }

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
        let mut repo_run_as = HashMap::new();
        if let Some(repos) = src.table(&key("repos")) {
            for (repo, settings) in repos {
                if let Some(user) = settings.get("run_as") {
                    let setting = format!("{SECTION}.repos.{repo}.run_as");
                    repo_run_as.insert(repo.clone(), HookUser::from_toml(&setting, user)?);
                }
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
            sync_interval: Duration::from_millis(src.get_or(
                &key("sync_interval_ms"),
                "GITOPS_SYNC_INTERVAL_MS",
                1000,
            )?),
            reload_hooks,
            repo_commands,
            hook_env,
            run_as: src
                .get::<String>(&key("run_as"), "GITOPS_RUN_AS")?
                .filter(|name| !name.is_empty())
                .map(|name| HookUser::resolve("GITOPS_RUN_AS", &name))
                .transpose()?,
            repo_run_as,
        })
    }
}
