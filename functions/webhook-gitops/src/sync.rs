//! Fast-forwarding one checkout, the Rust form of the seed's `gitops_sync.sh`.
//!
//! `git` is always run with an argument vector (never a shell), with prompts disabled, stdin
//! closed and a timeout, so a hung remote cannot wedge the worker.

use crate::config::{GitopsConfig, HookUser};
use hub_runtime::{Report, RunError};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// Marker file a checkout must contain to be synced; it may also name the reload command.
pub const MARKER: &str = ".gitops";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no checkout for {0} under the base directory")]
    NoCheckout(String),
    #[error("{0} has not opted in (no {MARKER} marker)")]
    NotOptedIn(String),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` timed out after {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The marker is not what it must be; the text says why, never what it holds.
    #[error("{MARKER} {0}")]
    BadMarker(&'static str),
}

/// A sync that fails is a failed run.
impl RunError for SyncError {}

/// Longest marker read: one command line and some comments.
const MAX_MARKER_BYTES: u64 = 4096;

/// The marker's metadata when it is a regular file in the checkout. A symlink does not count:
/// a pushed `.gitops -> /proc/self/environ` must never be read.
fn marker_meta(dir: &Path) -> Option<std::fs::Metadata> {
    std::fs::symlink_metadata(dir.join(MARKER))
        .ok()
        .filter(|m| m.file_type().is_file())
}

/// The marker's text: a regular file (the one just checked, not a file swapped in since), at
/// most [`MAX_MARKER_BYTES`], UTF-8 without NUL.
fn read_marker(dir: &Path, meta: &std::fs::Metadata) -> Result<String, SyncError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    if meta.len() > MAX_MARKER_BYTES {
        return Err(SyncError::BadMarker("is larger than 4096 bytes"));
    }
    let path = dir.join(MARKER);
    let read_err = |source| SyncError::Read {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(read_err)?;
    let opened = file.metadata().map_err(read_err)?;
    if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
        return Err(SyncError::BadMarker("changed while it was read"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_MARKER_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_MARKER_BYTES {
        return Err(SyncError::BadMarker("is larger than 4096 bytes"));
    }
    match String::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => Ok(text),
        _ => Err(SyncError::BadMarker("is not text")),
    }
}

/// Checks that `name` is a git checkout under the base directory with the opt-in marker.
pub fn checkout_dir(cfg: &GitopsConfig, name: &str) -> Result<PathBuf, SyncError> {
    let dir = cfg.base_dir.join(name);
    if !dir.join(".git").exists() {
        return Err(SyncError::NoCheckout(name.to_owned()));
    }
    if marker_meta(&dir).is_none() {
        return Err(SyncError::NotOptedIn(name.to_owned()));
    }
    Ok(dir)
}

/// Output of a command that succeeded.
async fn run(
    program: &Path,
    args: &[&str],
    cwd: &Path,
    env: Env<'_>,
    timeout: Duration,
) -> Result<String, SyncError> {
    let command = std::iter::once(program.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new(program);
    if let Env::Only { vars, user } = env {
        cmd.env_clear()
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(user) = user {
            // std drops the supplementary groups when it switches the uid.
            cmd.uid(user.uid).gid(user.gid).env("HOME", &user.home);
        }
    }
    let child = cmd
        .args(args)
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SyncError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    // Each command is a step span under the run's span.
    let step = tracing::info_span!("step", command = %command);
    let waited = tracing::Instrument::instrument(
        tokio::time::timeout(timeout, child.wait_with_output()),
        step,
    );
    let out = match waited.await {
        Ok(res) => res.map_err(|source| SyncError::Spawn {
            program: program.display().to_string(),
            source,
        })?,
        Err(_) => return Err(SyncError::Timeout { command, timeout }),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        // Keep the end: git puts the reason last.
        let tail: String = stderr
            .chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(SyncError::Command {
            command,
            status: out.status.to_string(),
            stderr: tail,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn git(cfg: &GitopsConfig, dir: &Path, args: &[&str]) -> Result<String, SyncError> {
    run(&cfg.git, args, dir, Env::Inherit, cfg.git_timeout).await
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Syncs one checkout: skip if tracked files are dirty; switch to the branch; fetch it from
/// `origin`; fast-forward only; delete other local branches; run the reload hook if HEAD moved.
pub async fn sync_repo(cfg: &GitopsConfig, name: &str) -> Result<Report, SyncError> {
    let dir = checkout_dir(cfg, name)?;
    let branch = cfg.branch.as_str();

    let dirty = git(
        cfg,
        &dir,
        &["status", "--porcelain", "--untracked-files=no"],
    )
    .await?;
    if !dirty.is_empty() {
        tracing::warn!(repository = name, "tracked files are modified; not syncing");
        return Ok(Report::skipped(format!(
            "{name}: tracked files are modified, not syncing"
        )));
    }
    let current = git(cfg, &dir, &["rev-parse", "--abbrev-ref", "HEAD"]).await?;
    if current != branch {
        git(cfg, &dir, &["checkout", "--quiet", branch]).await?;
    }
    let old = git(cfg, &dir, &["rev-parse", "HEAD"]).await?;
    git(cfg, &dir, &["fetch", "--quiet", "origin", branch]).await?;
    git(cfg, &dir, &["merge", "--ff-only", "--quiet", "FETCH_HEAD"]).await?;
    let new = git(cfg, &dir, &["rev-parse", "HEAD"]).await?;

    let branches = git(
        cfg,
        &dir,
        &["for-each-ref", "--format=%(refname:short)", "refs/heads/"],
    )
    .await?;
    let mut deleted = Vec::new();
    for other in branches.lines().filter(|b| *b != branch && !b.is_empty()) {
        git(cfg, &dir, &["branch", "--quiet", "-D", other]).await?;
        deleted.push(other.to_owned());
    }

    let mut summary = if old == new {
        format!("{name}: already at {}", short(&new))
    } else {
        format!("{name}: {} → {}", short(&old), short(&new))
    };
    if !deleted.is_empty() {
        summary.push_str(&format!("; deleted branches {}", deleted.join(", ")));
    }
    if old != new {
        match reload_command(cfg, name, &dir)? {
            Hook::None => {}
            Hook::NotAllowed => {
                tracing::warn!(
                    repository = name,
                    "the reload command named in {MARKER} was not run: this repository may not name its own command"
                );
                summary.push_str(&format!(
                    "; reload command in {MARKER} not run (allow it with \
                     [webhook_gitops.repos.{name}] allow_repo_command = true)"
                ));
            }
            Hook::Run(hook) => {
                let (program, args) = hook.split_first().unwrap_or_else(|| unreachable!());
                let program = resolve(&dir, program);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut env = cfg.hook_env.clone();
                env.extend(
                    [
                        ("GITOPS_REPOSITORY", name),
                        ("GITOPS_OLD_SHA", old.as_str()),
                        ("GITOPS_NEW_SHA", new.as_str()),
                    ]
                    .map(|(k, v)| (k.to_owned(), v.to_owned())),
                );
                let user = cfg.hook_user(name);
                let sandbox = Env::Only { vars: &env, user };
                run(&program, &args, &dir, sandbox, cfg.reload_timeout).await?;
                summary.push_str(&format!("; reloaded with {}", program.display()));
                if let Some(user) = user {
                    summary.push_str(&format!(" as {}", user.name));
                }
            }
        }
    }
    Ok(Report::success(summary))
}

/// What happens after a fast-forward.
enum Hook {
    /// Nothing to run (no command anywhere, or an empty marker).
    None,
    /// The marker names a command, but the operator has not let this repository choose one.
    NotAllowed,
    Run(Vec<String>),
}

/// The environment a command runs with.
enum Env<'a> {
    /// The gateway's own (git: it may need `SSH_AUTH_SOCK`, `GIT_SSH_COMMAND`, proxies).
    Inherit,
    /// Exactly these variables (reload hooks: none of the gateway's secrets), as `user` when
    /// one is configured.
    Only {
        vars: &'a [(String, String)],
        user: Option<&'a HookUser>,
    },
}

/// The reload command for a checkout, in order of precedence: the one configured for the
/// repository in `hub.toml`; then, only for repositories allowed to name their own, the marker
/// itself when it is executable, or the first non-comment line of the marker. An empty marker
/// means "sync only".
fn reload_command(cfg: &GitopsConfig, name: &str, dir: &Path) -> Result<Hook, SyncError> {
    if let Some(cmd) = cfg.reload_hooks.get(name) {
        return Ok(Hook::Run(cmd.clone()));
    }
    // The push being deployed may have replaced the marker (with a symlink, say).
    let meta = marker_meta(dir).ok_or(SyncError::BadMarker(
        "must be a regular file in the checkout, not a symlink",
    ))?;
    let named = if meta.permissions().mode() & 0o111 != 0 {
        Some(vec![format!("./{MARKER}")])
    } else {
        parse_marker(&read_marker(dir, &meta)?)
    };
    Ok(match named {
        None => Hook::None,
        Some(_) if !cfg.repo_commands.contains(name) => Hook::NotAllowed,
        Some(cmd) => Hook::Run(cmd),
    })
}

/// The command a marker names: its first line that is neither blank nor a `#` comment, split on
/// whitespace (no shell: quotes and `$VARS` are not interpreted).
pub fn parse_marker(text: &str) -> Option<Vec<String>> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
}

/// Relative commands with a slash (`./deploy.sh`, `bin/reload`) are relative to the checkout;
/// bare names are looked up on `PATH`.
fn resolve(dir: &Path, program: &str) -> PathBuf {
    if program.contains('/') && !program.starts_with('/') {
        dir.join(program)
    } else {
        PathBuf::from(program)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_parsing() {
        assert_eq!(parse_marker(""), None);
        assert_eq!(parse_marker("# only a comment\n\n"), None);
        assert_eq!(
            parse_marker("# reload after sync\n  systemctl --user restart app \n"),
            Some(vec![
                "systemctl".into(),
                "--user".into(),
                "restart".into(),
                "app".into()
            ])
        );
        assert_eq!(
            parse_marker("./deploy.sh\nignored"),
            Some(vec!["./deploy.sh".into()])
        );
    }

    #[test]
    fn relative_commands_resolve_inside_the_checkout() {
        let dir = Path::new("/srv/gitops/app");
        assert_eq!(resolve(dir, "./deploy.sh"), dir.join("./deploy.sh"));
        assert_eq!(resolve(dir, "bin/reload"), dir.join("bin/reload"));
        assert_eq!(resolve(dir, "systemctl"), PathBuf::from("systemctl"));
        assert_eq!(
            resolve(dir, "/usr/bin/true"),
            PathBuf::from("/usr/bin/true")
        );
    }
}
