//! The service manager's side of `Type=notify` (see `systemd/hub-gateway.service`): `READY=1`
//! once both listeners are bound and the accept loops are about to run, `STOPPING=1` at the
//! shutdown signal, and — when the unit sets `WatchdogSec=` — `WATCHDOG=1` every half of
//! `WATCHDOG_USEC`, but only after a store check passed in that interval. A gateway whose
//! runtime is wedged (the ping task never runs) or whose store stopped taking writes (the check
//! fails or does not answer in time) goes silent, and systemd restarts it (`Restart=on-failure`).
//!
//! Without `NOTIFY_SOCKET` (run by hand, in a container, in tests) every call is a no-op; without
//! `WATCHDOG_USEC` (or with a `WATCHDOG_PID` that is not this process) no ping task starts.

use hub_runtime::Store;
use sd_notify::NotifyState;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Tells the service manager the gateway is serving, and starts the watchdog pings if it asked
/// for them. The returned task (if any) pings until it is aborted or the runtime stops.
pub fn ready(store: Store) -> Option<JoinHandle<()>> {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
    let timeout = sd_notify::watchdog_enabled()?;
    // systemd's advice (sd_watchdog_enabled(3)): ping at half the timeout, so one slow check
    // does not by itself get the service killed.
    let every = (timeout / 2).max(Duration::from_millis(10));
    tracing::info!(?timeout, ?every, "systemd watchdog enabled");
    Some(tokio::spawn(watchdog(store, every)))
}

/// Tells the service manager the gateway is shutting down (so a slow drain is not mistaken for
/// a hang at start).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

async fn watchdog(store: Store, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    // A late tick (the runtime was busy) runs once, not in a burst that would hide the stall.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    loop {
        ticks.tick().await;
        // The write probe of `/readyz`: a rolled-back insert, cheap, and it fails when the
        // database is gone, read-only or refusing connections. Bounded by the interval, so a
        // check that hangs counts as a failed one.
        let check = match tokio::time::timeout(every, store.ping()).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {every:?}")),
        };
        match check {
            Ok(()) => {
                if !healthy {
                    tracing::info!("store answers again; systemd watchdog pings resumed");
                    send(&[NotifyState::Status("serving")]);
                    healthy = true;
                }
                send(&[NotifyState::Watchdog]);
            }
            Err(error) => {
                if healthy {
                    tracing::warn!(%error, "store check failed; systemd watchdog pings paused");
                    send(&[NotifyState::Status("store not answering; watchdog paused")]);
                    healthy = false;
                }
            }
        }
    }
}

fn send(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify the service manager ($NOTIFY_SOCKET)");
    }
}
