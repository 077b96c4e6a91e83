//! hub-collector as an operator runs it, against a gateway serving metrics-flush in this test
//! process: print, push, spool while the gateway is unreachable, replay in order after recovery,
//! the spool bound, and `kill -9` of the running agent.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn print_sample_with(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hub-collector"))
        .arg("--print")
        .args(args)
        .output()
        .expect("run");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("--print prints one JSON sample")
}

fn print_sample() -> serde_json::Value {
    print_sample_with(&[])
}

/// The shapes the old hub's dashboards read (see `../shared/seed-compat`).
#[test]
fn print_shows_one_sample_of_this_host_in_the_dashboards_shapes() {
    let s = print_sample_with(&["--sysfs", "/nonexistent"]);
    assert!(!s["host"].as_str().expect("host").is_empty());
    let os = s["os"].as_str().expect("os");
    assert!(
        os.contains(' ') && !os.contains('('),
        "platform and version: {os}"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(s["time"].as_str().expect("time")).is_ok());
    let m = &s["metrics"];
    let usage = m["cpu"]["usage"].as_f64().expect("cpu usage");
    assert!((0.0..=100.0).contains(&usage));
    assert_eq!(m["cpu"]["package_temp"], 0.0, "no sensors: 0, as before");
    assert_eq!(m["cpu"]["core_temps"], serde_json::json!({}));
    assert!(!m["cpu"]["cores"].as_array().expect("cores").is_empty());
    let mem = &m["memory"];
    for key in ["total", "available", "used"] {
        assert!(mem[key].as_u64().is_some(), "memory.{key}: {mem}");
    }
    let pct = mem["used_percent"].as_f64().expect("used_percent");
    assert!((0.0..=100.0).contains(&pct));
    assert!(m["host"]["uptime_secs"].as_u64().is_some());
    let ifaces = m["network"]
        .as_object()
        .expect("network: interface → counters");
    assert!(
        !ifaces.contains_key("lo"),
        "loopback is filtered: {ifaces:?}"
    );
    for (name, n) in ifaces {
        assert!(
            n["rx_bytes"].as_u64().is_some() && n["tx_bytes"].as_u64().is_some(),
            "{name}"
        );
    }
    let disks = m["disk"].as_object().expect("disk: mount → figures");
    assert!(disks.contains_key("/"), "the root filesystem: {disks:?}");
    for (mount, d) in disks {
        assert!(
            !mount.starts_with("/boot") && !mount.starts_with("/dev"),
            "{mount}"
        );
        let (used, free) = (
            d["used"].as_u64().expect("used"),
            d["free"].as_u64().expect("free"),
        );
        assert!(
            used + free <= d["total"].as_u64().expect("total"),
            "{mount}: {d}"
        );
        assert!(d["used_percent"].as_f64().is_some(), "{mount}");
    }
}

#[test]
fn temperatures_come_from_the_sysfs_root_and_the_host_name_can_be_set() {
    let sysfs = TempDir::new().expect("sysfs");
    let dev = sysfs.path().join("class/hwmon/hwmon3");
    std::fs::create_dir_all(&dev).expect("hwmon");
    for (file, text) in [
        ("name", "coretemp\n"),
        ("temp1_label", "Package id 0\n"),
        ("temp1_input", "55000\n"),
        ("temp2_label", "Core 0\n"),
        ("temp2_input", "47000\n"),
        ("temp3_label", "Core 1\n"),
        ("temp3_input", "49600\n"),
    ] {
        std::fs::write(dev.join(file), text).expect("sensor file");
    }
    let path = sysfs.path().display().to_string();
    let s = print_sample_with(&["--sysfs", &path, "--host-name", "server"]);
    assert_eq!(s["host"], "server");
    let cpu = &s["metrics"]["cpu"];
    assert_eq!(cpu["package_temp"], 55.0);
    assert_eq!(
        cpu["core_temps"],
        serde_json::json!({"core_0": 47, "core_1": 50})
    );
    // The same through the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_hub-collector"))
        .arg("--print")
        .env("HUB_COLLECTOR_SYSFS", &path)
        .env("HUB_COLLECTOR_HOST", "edge-1")
        .output()
        .expect("run");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (
            s["host"].as_str(),
            s["metrics"]["cpu"]["package_temp"].as_f64()
        ),
        (Some("edge-1"), Some(55.0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_pushes_a_sample_that_the_gateway_stores() {
    let hub = hub().await;
    let spool = TempDir::new().expect("spool");
    once(&hub.url, spool.path());
    assert!(
        spooled(spool.path()).is_empty(),
        "nothing left in the spool"
    );
    let host = print_sample()["host"].as_str().expect("host").to_owned();
    let resp: serde_json::Value =
        reqwest::get(format!("{}/api/metrics/latest?host={host}", hub.url))
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
    for kind in ["cpu", "memory", "disk", "network", "host"] {
        assert!(resp["metrics"][kind].is_object(), "{kind} stored: {resp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_taken_while_the_gateway_is_down_arrive_once_after_recovery() {
    let spool = TempDir::new().expect("spool");
    let down = dead_url();
    for _ in 0..3 {
        once_spooled(&down, spool.path(), TOKEN);
        // Samples are keyed by whole seconds.
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let waiting = spooled(spool.path());
    assert_eq!(waiting.len(), 3, "all three spooled: {waiting:?}");

    let hub = hub().await;
    once(&hub.url, spool.path());
    assert!(spooled(spool.path()).is_empty());
    let host = print_sample()["host"].as_str().expect("host").to_owned();
    let (times, rows) = stored(&hub, &host).await;
    assert_eq!(times, 4, "three replayed + the new one");
    assert!(rows >= 4 * 5, "one row per metric type per sample: {rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_keeps_samples_spooled() {
    let hub = hub().await;
    let spool = TempDir::new().expect("spool");
    let out = once_spooled(&hub.url, spool.path(), "wrong");
    assert_eq!(spooled(spool.path()).len(), 1);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("push failed; samples stay spooled") && log.contains("wrong token"),
        "{log}"
    );
}

#[test]
fn the_spool_is_bounded_and_drops_oldest_first() {
    let spool = TempDir::new().expect("spool");
    let down = dead_url();
    let bound = print_sample().to_string().len() as u64 * 2 + 64;
    let mut first = None;
    for _ in 0..4 {
        let out = collector(&down, spool.path(), TOKEN)
            .args(["--once", "--spool-max-bytes", &bound.to_string()])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(75), "spooled, not pushed");
        first.get_or_insert_with(|| spooled(spool.path())[0].clone());
        std::thread::sleep(Duration::from_millis(1000));
    }
    let left = spooled(spool.path());
    assert!(left.len() <= 2, "{left:?}");
    assert!(
        !left.contains(first.as_ref().expect("first")),
        "the oldest went first"
    );
    let dropped: u64 = std::fs::read_to_string(spool.path().join("dropped.count"))
        .expect("drops are counted")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(dropped as usize + left.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_agent_loses_nothing_already_sampled() {
    let spool = TempDir::new().expect("spool");
    let down = dead_url();
    let mut agent = collector(&down, spool.path(), TOKEN)
        .args(["--interval", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    while spooled(spool.path()).len() < 3 {
        assert!(Instant::now() < deadline, "agent did not spool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGKILL: no chance to clean up.
    agent.kill().expect("kill -9");
    agent.wait().expect("reap");
    let before = spooled(spool.path());
    assert!(before.len() >= 3);

    let hub = hub().await;
    once(&hub.url, spool.path());
    assert!(spooled(spool.path()).is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(spool.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written files are cleared on start: {leftovers:?}"
    );
    let host = print_sample()["host"].as_str().expect("host").to_owned();
    let (times, _) = stored(&hub, &host).await;
    // The new sample may share its second with the last spooled one (same key, stored once).
    let expected = before.len() as i64;
    assert!(
        times == expected || times == expected + 1,
        "every spooled sample arrived exactly once: {times} distinct times for {expected} spooled"
    );
}

/// Samples the running agent has taken so far: each one logs exactly one push outcome.
fn samples_taken(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains(r#""message":"pushed""#) || l.contains("push failed; samples stay spooled")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_restart_while_the_agent_runs_loses_and_repeats_nothing() {
    let data = TempDir::new().expect("data");
    let spool = TempDir::new().expect("spool");
    let addr = dead_url().trim_start_matches("http://").to_owned();
    let log_path = spool.path().join("agent.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut agent = collector(&format!("http://{addr}"), &spool.path().join("q"), TOKEN)
        .args(["--interval", "1"])
        .stdout(log)
        .spawn()
        .expect("spawn agent");
    let host = print_sample()["host"].as_str().expect("host").to_owned();
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Up: samples flow.
    let hub = Hub::start(data.path(), &addr).await;
    wait_for("two pushes", &|| {
        read_log().matches(r#""message":"pushed""#).count() >= 2
    });
    hub.stop().await;
    // Down for a while: samples pile up in the spool.
    wait_for("three spooled samples", &|| {
        spooled(&spool.path().join("q")).len() >= 3
    });
    // Up again: the backlog drains.
    let hub = Hub::start(data.path(), &addr).await;
    wait_for("the spool to drain", &|| {
        spooled(&spool.path().join("q")).is_empty()
            && read_log().matches(r#""message":"pushed""#).count() >= 4
    });
    Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .expect("kill");
    agent.wait().expect("agent exits");
    let taken = samples_taken(&read_log());
    let (times, _) = stored(&hub, &host).await;
    assert_eq!(
        times as usize, taken,
        "every sample taken is stored exactly once"
    );
    hub.stop().await;
}

#[test]
fn runs_as_an_unprivileged_user() {
    let Ok(out) = Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            env!("CARGO_BIN_EXE_hub-collector"),
            "--print",
        ])
        .output()
    else {
        panic!("runuser (util-linux) is needed for this test");
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON sample");
    assert!(s["metrics"]["memory"]["total"].as_u64().expect("memory") > 0);
}

#[test]
fn a_bad_gateway_url_is_refused_at_start() {
    let spool = TempDir::new().expect("spool");
    for bad in ["127.0.0.1:8085", "ftp://hub/", "http://", "http://hub/?x=1"] {
        let out = collector(bad, spool.path(), TOKEN)
            .arg("--once")
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--gateway-url"), "{bad}: {err}");
    }
    assert!(spooled(spool.path()).is_empty(), "nothing was sampled");
}

/// One scrape of the agent's `/metrics`: metric name → value.
async fn scrape(addr: &str) -> Option<std::collections::HashMap<String, f64>> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_its_pushes_and_failures_to_prometheus() {
    let hub = hub().await;
    let (up_spool, down_spool) = (
        TempDir::new().expect("spool"),
        TempDir::new().expect("spool"),
    );
    let free = || dead_url().trim_start_matches("http://").to_owned();
    let (up_addr, down_addr) = (free(), free());
    let start = |url: &str, spool: &std::path::Path, addr: &str| {
        collector(url, spool, TOKEN)
            .args(["--interval", "1", "--metrics-addr", addr])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn agent")
    };
    let mut up = start(&hub.url, up_spool.path(), &up_addr);
    let mut down = start(&dead_url(), down_spool.path(), &down_addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (good, bad) = loop {
        if let (Some(good), Some(bad)) = (scrape(&up_addr).await, scrape(&down_addr).await)
            && good["hub_collector_samples_pushed_total"] >= 2.0
            && bad["hub_collector_push_failures_total"] >= 2.0
        {
            break (good, bad);
        }
        assert!(Instant::now() < deadline, "no pushes or failures counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for agent in [&mut up, &mut down] {
        agent.kill().expect("kill");
        agent.wait().expect("reap");
    }

    assert!(good["hub_collector_samples_total"] >= good["hub_collector_samples_pushed_total"]);
    assert_eq!(good["hub_collector_push_failures_total"], 0.0);
    assert_eq!(good["hub_collector_spool_pending_samples"], 0.0);
    assert!(good["hub_collector_last_push_timestamp_seconds"] > 1.7e9);
    assert!(good["hub_collector_last_sample_timestamp_seconds"] > 1.7e9);

    assert_eq!(bad["hub_collector_samples_pushed_total"], 0.0);
    assert_eq!(bad["hub_collector_last_push_timestamp_seconds"], 0.0);
    assert_eq!(bad["hub_collector_samples_lost_total"], 0.0);
    // What failed to go out is waiting in the spool, and the gauge says how much.
    assert!(bad["hub_collector_spool_pending_samples"] >= 2.0);
    assert!(spooled(down_spool.path()).len() as f64 >= bad["hub_collector_spool_pending_samples"]);
}

#[test]
fn a_metrics_address_in_use_is_refused_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let spool = TempDir::new().expect("spool");
    let out = collector(&dead_url(), spool.path(), TOKEN)
        .args(["--metrics-addr", &addr])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr} for /metrics")),
        "{err}"
    );
    assert!(spooled(spool.path()).is_empty(), "nothing was sampled");
}
