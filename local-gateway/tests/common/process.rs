//! The `hub-gateway` binary as a child process: started with exactly a test's settings, its
//! listeners read from its 'listening' log line, stopped with SIGTERM.

use super::Setup;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `hub-gateway` with exactly the environment of `setup` (nothing leaks in from the developer's).
pub fn gateway_cmd(setup: &Setup) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hub-gateway"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", setup.data_dir.path())
        .current_dir(setup.data_dir.path())
        .envs(&setup.env);
    cmd
}

/// Starts `hub-gateway serve --port 0` and returns the child and the address it logged.
pub fn spawn_server(setup: &Setup) -> (Child, String) {
    let mut cmd = gateway_cmd(setup);
    cmd.args(["serve", "--port", "0"]);
    spawn_command(cmd)
}

/// Starts `cmd` (a gateway serving, perhaps under a wrapper) and returns the child and the
/// address it logged.
pub fn spawn_command(cmd: Command) -> (Child, String) {
    let (child, addr, _) = spawn_command_logged(cmd);
    (child, addr)
}

/// The JSON log lines a spawned gateway has written to stdout so far.
pub type Logs = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Like [`spawn_command`], keeping every log line.
pub fn spawn_command_logged(cmd: Command) -> (Child, String, Logs) {
    let spawned = spawn_gateway(cmd);
    (spawned.child, spawned.addr, spawned.logs)
}

/// A `hub-gateway` process serving, with the addresses of both its listeners.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// The operator listener, as `host:port`.
    pub addr: String,
    /// The public listener, as `host:port`.
    pub public_addr: String,
    pub logs: Logs,
}

/// Starts `cmd` (a gateway serving) and waits for its 'listening' line, which names both
/// listeners.
pub fn spawn_gateway(mut cmd: Command) -> Spawned {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hub-gateway");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let logs = Logs::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (addr, public_addr) = loop {
        assert!(Instant::now() < deadline, "no 'listening' line");
        let line = lines.next().expect("gateway exited early").expect("read");
        let v: serde_json::Value = serde_json::from_str(&line).expect("log lines are JSON");
        logs.lock().expect("logs").push(line);
        if v["message"] == "hub-gateway listening" {
            let field = |name: &str| v[name].as_str().expect(name).to_owned();
            break (field("addr"), field("public_addr"));
        }
    };
    // Keep draining so the child never blocks on a full pipe.
    let kept = logs.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().expect("logs").push(line);
        }
    });
    Spawned {
        child,
        addr,
        public_addr,
        logs,
    }
}

/// Sends SIGTERM and waits (at most 20 s) for the process to exit.
pub async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
