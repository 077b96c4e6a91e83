//! `Type=notify` as systemd sees it: the test plays the service manager, binding the datagram
//! socket named by `NOTIFY_SOCKET` and asking for a watchdog with `WATCHDOG_USEC`, then takes the
//! store away (PostgreSQL refuses the database's connections) and gives it back.

mod common;

use common::{Backend, Setup, spawn_gateway, terminate};
use std::time::Duration;
use tokio::net::UnixDatagram;

/// 1 s: the gateway pings every 500 ms.
const WATCHDOG_USEC: &str = "1000000";

/// The service manager's end of `NOTIFY_SOCKET`.
struct Manager {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    /// The next notification (one datagram, `KEY=VALUE` lines), within `within`.
    async fn next(&mut self, within: Duration) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(within, self.socket.recv(&mut buf))
            .await
            .ok()?
            .expect("recv");
        let text = String::from_utf8(buf[..n].to_vec()).expect("notifications are text");
        self.seen.push(text.clone());
        Some(text)
    }

    /// Reads notifications until one has the line `line`; panics after 15 s.
    async fn until(&mut self, line: &str) {
        loop {
            let msg = self
                .next(Duration::from_secs(15))
                .await
                .unwrap_or_else(|| panic!("no {line:?} within 15 s; seen {:?}", self.seen));
            if msg.lines().any(|l| l == line) {
                return;
            }
        }
    }
}

#[tokio::test]
async fn ready_after_listening_and_watchdog_only_while_the_store_answers() {
    let setup = Setup::new(Backend::Postgres).await;
    let db = setup.db.as_ref().expect("postgres");
    let sock_path = setup.data_dir.path().join("notify.sock");
    let mut manager = Manager {
        socket: UnixDatagram::bind(&sock_path).expect("bind notify socket"),
        seen: Vec::new(),
    };

    let mut cmd = common::gateway_cmd(&setup);
    cmd.args(["serve", "--port", "0"])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", WATCHDOG_USEC);
    let mut gateway = spawn_gateway(cmd);

    // READY=1 first, and by then the listener answers.
    let first = manager
        .next(Duration::from_secs(15))
        .await
        .expect("READY=1");
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    let health = reqwest::get(format!("http://{}/healthz", gateway.addr))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    // Pings keep coming while the store takes writes.
    for _ in 0..3 {
        manager.until("WATCHDOG=1").await;
    }

    // PostgreSQL refuses the database: its connections are cut and new ones refused.
    db.allow_connections(false).await;
    // Notifications from one sender arrive in order: after the status change, no ping may come.
    manager
        .until("STATUS=store not answering; watchdog paused")
        .await;
    let mut silent = Vec::new();
    while let Some(msg) = manager.next(Duration::from_secs(3)).await {
        silent.push(msg);
        assert!(silent.len() < 10, "still notifying: {silent:?}");
    }
    assert!(
        !silent.iter().any(|m| m.lines().any(|l| l == "WATCHDOG=1")),
        "pinged with the store gone: {silent:?}"
    );
    let logs = gateway.logs.lock().expect("logs").join("\n");
    assert!(
        logs.contains("store check failed; systemd watchdog pings paused"),
        "{logs}"
    );

    // The store answers again: pings resume.
    db.allow_connections(true).await;
    manager.until("STATUS=serving").await;
    manager.until("WATCHDOG=1").await;

    // SIGTERM: STOPPING=1, then a clean exit.
    let stop = tokio::spawn(async move {
        let status = terminate(&mut gateway.child).await;
        (gateway, status)
    });
    manager.until("STOPPING=1").await;
    let (_gateway, status) = stop.await.expect("join");
    assert!(status.success(), "{status:?}");
}
