//! webhook-gitops reload hooks: who may name them, what they run with (environment, user,
//! timeout), and that nothing a pushed file or a hook prints leaks a secret.

#[macro_use]
mod common;

use common::{Backend, GitFixture, Setup, TestApp, app_for, app_trusting, sync_runs, synced_to};
use std::os::unix::fs::PermissionsExt;

const FN: &str = webhook_gitops::NAME;

/// A test gateway's settings, with webhook-gitops configured.
async fn hub_setup(backend: Backend) -> Setup {
    Setup::new(backend)
        .await
        .with(webhook_gitops::testing::env())
}

#[tokio::test]
async fn reload_hook_named_by_the_marker_runs_after_a_change() {
    // The marker names a script in the repository; it records the SHAs it was given.
    let fx = GitFixture::new("infra", "main", Some("# reload after sync\n./reload.sh\n"));
    fx.add_script(
        "reload.sh",
        "#!/bin/sh\necho \"$GITOPS_OLD_SHA $GITOPS_NEW_SHA\" >> reloaded.log\n",
    );
    let (_setup, app) = app_trusting(&fx).await;
    let old = fx.deployed_head();
    let new = fx.push_commit("app.yaml", "v2\n");
    let (status, _) = app.deliver("push", &fx.push_event(&new)).await;
    assert_eq!(status, 202);
    let runs = app.wait_runs(FN, "sync", |r| synced_to(r, &new)).await;
    let summary = sync_runs(&runs)[0]["summary"]
        .as_str()
        .expect("summary")
        .to_owned();
    assert!(summary.contains("reloaded with"), "{summary}");
    let log = std::fs::read_to_string(fx.checkout().join("reloaded.log")).expect("hook ran");
    assert_eq!(log, format!("{old} {new}\n"));
    app.stop().await;
}

#[tokio::test]
async fn reload_hook_from_config_wins_and_is_bounded_by_a_timeout() {
    let fx = GitFixture::new("infra", "main", Some("./never-run.sh\n"));
    let mut setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display())
        .set("GITOPS_RELOAD_TIMEOUT_SECS", 1);
    let config = setup.data_dir.path().join("hub.toml");
    std::fs::write(
        &config,
        "[webhook_gitops.reload]\ninfra = [\"sleep\", \"30\"]\n",
    )
    .expect("toml");
    setup.config_file = Some(config);
    let app = TestApp::spawn(&setup).await;
    let new = fx.push_commit("a", "1");
    app.push(&fx, &new).await;
    let summary = app.wait_sync("failure").await;
    assert_eq!(summary, "`sleep 30` timed out after 1s");
    assert_eq!(fx.deployed_head(), new, "the fast-forward itself happened");
    app.stop().await;
}

#[tokio::test]
async fn a_pushed_marker_symlink_is_never_read_or_echoed() {
    // The push replaces `.gitops` with a symlink to a file full of secrets (as a link to
    // /proc/self/environ would be): the fast-forward happens, the hook step refuses the marker,
    // and nothing of the file reaches the run.
    let outside = tempfile::TempDir::new().expect("dir");
    let environ = outside.path().join("environ");
    std::fs::write(
        &environ,
        format!(
            "GITHUB_WEBHOOK_SECRET={}\0ROOT_PASSWORD=opensesame",
            webhook_gitops::testing::SECRET
        ),
    )
    .expect("write");
    let fx = GitFixture::new("infra", "main", Some(""));
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    std::fs::remove_file(fx.author.join(".gitops")).expect("rm marker");
    std::os::unix::fs::symlink(&environ, fx.author.join(".gitops")).expect("symlink");
    let new = fx.push_commit("app.yaml", "v2\n");
    app.push(&fx, &new).await;
    let summary = app.wait_sync("failure").await;
    assert!(
        summary.contains(".gitops must be a regular file in the checkout, not a symlink"),
        "{summary}"
    );
    let all = serde_json::to_string(&app.runs(FN).await).expect("json");
    for leak in [
        webhook_gitops::testing::SECRET,
        "GITHUB_WEBHOOK_SECRET=",
        "opensesame",
    ] {
        assert!(!all.contains(leak), "{leak} leaked into runs: {all}");
    }
    // A symlinked marker does not opt a checkout in either.
    let (status, body) = app.deliver("push", &fx.push_event(&new)).await;
    assert_eq!(status, 403, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn known_secrets_in_hook_output_are_redacted() {
    let fx = GitFixture::new("infra", "main", Some("./reload.sh\n"));
    fx.add_script(
        "reload.sh",
        &format!(
            "#!/bin/sh\necho \"connecting with {}\" >&2\nexit 3\n",
            webhook_gitops::testing::SECRET
        ),
    );
    let (_setup, app) = app_trusting(&fx).await;
    let new = fx.push_commit("app.yaml", "v2\n");
    app.push(&fx, &new).await;
    let summary = app.wait_sync("failure").await;
    assert!(summary.contains("connecting with ***"), "{summary}");
    assert!(
        !summary.contains(webhook_gitops::testing::SECRET),
        "{summary}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_command_named_by_the_repository_runs_only_when_the_operator_allows_it() {
    // Whoever can push must not get to run code on the host by editing `.gitops`.
    let fx = GitFixture::new("infra", "main", Some("./reload.sh\n"));
    fx.add_script("reload.sh", "#!/bin/sh\ntouch ran\n");
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    let new = fx.push_commit("app.yaml", "v2\n");
    app.push(&fx, &new).await;
    let runs = app.wait_runs(FN, "sync", |r| synced_to(r, &new)).await;
    let summary = sync_runs(&runs)[0]["summary"]
        .as_str()
        .expect("summary")
        .to_owned();
    assert!(
        summary.contains(
            "reload command in .gitops not run (allow it with [webhook_gitops.repos.infra] allow_repo_command = true)"
        ),
        "{summary}"
    );
    assert!(
        !fx.checkout().join("ran").exists(),
        "the pushed command did not run"
    );
    app.stop().await;
}

#[tokio::test]
async fn reload_hooks_get_none_of_the_gateways_secrets() {
    // Through the binary, whose process environment holds the secrets as systemd would pass
    // them: the hook sees PATH, HOME, LANG and the GITOPS_* variables only.
    let fx = GitFixture::new("infra", "main", Some("./reload.sh\n"));
    fx.add_script("reload.sh", "#!/bin/sh\nenv > hook-env.txt\n");
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display())
        .set("HUB_COLLECTOR_TOKEN", "collector-token-value")
        .with_config(&webhook_gitops::testing::allow_repo_command("infra"));
    let (mut child, addr) = common::spawn_server(&setup);
    let new = fx.push_commit("app.yaml", "v2\n");
    let resp = common::signed_push(&reqwest::Client::new(), &addr, fx.push_event(&new))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 202);
    let dump = fx.checkout().join("hook-env.txt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !dump.exists() {
        assert!(std::time::Instant::now() < deadline, "the hook did not run");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    common::terminate(&mut child).await;
    let env = std::fs::read_to_string(&dump).expect("hook env");
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(env.contains(&format!("GITOPS_NEW_SHA={new}")), "{env}");
    assert!(names.contains(&"PATH"), "{env}");
    for secret in [webhook_gitops::testing::SECRET, "collector-token-value"] {
        assert!(!env.contains(secret), "{secret} reached the hook: {env}");
    }
    for name in &names {
        assert!(
            [
                "PATH",
                "HOME",
                "LANG",
                "GIT_TERMINAL_PROMPT",
                "PWD",
                "SHLVL",
                "_"
            ]
            .contains(name)
                || name.starts_with("GITOPS_"),
            "unexpected variable {name} in the hook's environment: {env}"
        );
    }
}

#[tokio::test]
async fn hooks_run_as_the_configured_user_without_root_groups() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let out = tempfile::TempDir::new().expect("out dir");
    for dir in [fx.root.path(), out.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let dump = out.path().join("who");
    let toml = format!(
        "[webhook_gitops.reload]\ninfra = [\"sh\", \"-c\", \"echo $(id -u) $(id -G) $HOME > {}\"]\n\
         [webhook_gitops.repos.infra]\nrun_as = \"nobody\"\n",
        dump.display()
    );
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display())
        .with_config(&toml);
    if !nix_is_root() {
        // Only root can switch users: a non-root gateway refuses the setting at start.
        let err = local_gateway::Gateway::new(setup.source())
            .await
            .expect_err("run_as needs root");
        assert!(
            err.to_string().contains("needs the gateway to run as root"),
            "{err}"
        );
        return;
    }
    let app = TestApp::spawn(&setup).await;
    let new = fx.push_commit("a", "1");
    app.push(&fx, &new).await;
    let summary = app.wait_sync("success").await;
    assert!(summary.ends_with("as nobody"), "{summary}");
    let who = std::fs::read_to_string(&dump).expect("the hook ran");
    let nobody = std::process::Command::new("getent")
        .args(["passwd", "nobody"])
        .output()
        .expect("getent");
    let entry = String::from_utf8_lossy(&nobody.stdout);
    let fields: Vec<&str> = entry.trim().split(':').collect();
    let (uid, gid, home) = (fields[2], fields[3], fields[5]);
    assert_eq!(
        who.trim(),
        format!("{uid} {gid} {home}"),
        "uid, only its own group, its HOME"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_hook_user_is_refused_at_start() {
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_RUN_AS", "no-such-user-here");
    let err = local_gateway::Gateway::new(setup.source())
        .await
        .expect_err("unknown user");
    assert!(
        err.to_string()
            .contains("no such user \"no-such-user-here\""),
        "{err}"
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

#[tokio::test]
async fn known_secrets_never_reach_the_binarys_log_lines() {
    // Through the binary, with secrets in its environment as systemd would pass them: a hook
    // that prints them fails, and the failure is logged with the values replaced by ***.
    let token = "collector-token-value";
    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = common::gitops_setup(&fx, Backend::Sqlite)
        .await
        .set("HUB_COLLECTOR_TOKEN", token)
        .with_config(&format!(
            "[webhook_gitops.reload]\ninfra = [\"sh\", \"-c\", \"echo using {} and {token} >&2; exit 3\"]\n",
            webhook_gitops::testing::SECRET
        ));
    let mut cmd = common::gateway_cmd(&setup);
    cmd.args(["serve", "--port", "0"]);
    let (mut child, addr, logs) = common::spawn_command_logged(cmd);
    let new = fx.push_commit("app.yaml", "v2\n");
    let resp = common::signed_push(&reqwest::Client::new(), &addr, fx.push_event(&new))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let failure = loop {
        let found = logs
            .lock()
            .expect("logs")
            .iter()
            .find(|l| l.contains("run finished") && l.contains("\"failure\""))
            .cloned();
        if let Some(line) = found {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "no failure logged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    common::terminate(&mut child).await;
    assert!(failure.contains("using *** and ***"), "{failure}");
    for line in logs.lock().expect("logs").iter() {
        for secret in [webhook_gitops::testing::SECRET, token] {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}
