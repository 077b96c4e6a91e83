#!/usr/bin/env python3
"""`make bench`: every comparison in one run, then the report.

Each step measures the hub and its peer side by side, alternating, BENCH_REPEAT (5) times (each
run starts once both servers went idle: see settle()), and appends one line per run to
bench/results.jsonl (see bench/src/results.rs); `hub-bench report` then writes BENCHMARKS.md
(machine, one row per comparison: hub median and spread, peer median, ratio, aim, met) and the
SVG plots in bench/plots/.

Steps, in order (BENCH_STEPS picks some, e.g. BENCH_STEPS="webhook healthz"):
  machine  cores, memory, kernel, CPU, tool versions
  webhook  signed push deliveries to a real opted-in checkout (each request a distinct body and
           X-GitHub-Delivery, signed by wrk through libcrypto: scripts/signed-deliveries.lua, so
           every one is verified, claimed in the durable replay ledger and queued for a real
           sync) vs Debian's `webhook` running /bin/true on the same kind of deliveries; wrk at
           1..64 connections (16 and 64 BENCH_REPEAT times, the others once), p50/p99
  healthz  GET /healthz through the gateway's whole stack vs local-gateway's example
           bare-hello (the same answer from axum with no middleware)
  runs     run rows into SQLite and PostgreSQL: the store's group commit vs one per transaction
           (cargo bench -p hub-runtime --bench runs)
  metrics  scripts/bench-metrics.sh: collector CPU per sample vs node_exporter; ingest rows/s by
           samples per request (1 connection) vs COPY
  sync     reading-sync vs the seed's loop (cargo bench, BENCH_DOCS documents)
  backup   scripts/bench-backup.sh: minio-backup vs rclone rcat to one Garage, RSS over time
  lambda   scripts/bench-lambda.sh: bootstrap init time and size (make lambda-build first)
  soak     bench/soak.py: SOAK_SECS (600) of mixed load; gateway RSS over time

Knobs: BENCH_REPEAT (5), BENCH_DURATION (8, seconds per wrk run), BENCH_DOCS (2000),
BENCH_BACKUP_MIB (1024), SOAK_SECS (600), BENCH_KEEP_RESULTS=1 appends to the results file
instead of starting it afresh. Needs what `make test-deps` installs, plus wrk, webhook,
prometheus-node-exporter, rclone and linux-perf (installed here when missing).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak  # noqa: E402  (its git fixture, wrk result script and readiness wait)
from bench_results import emit, info  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.jsonl"
RUNS = int(os.environ.get("BENCH_REPEAT", "5"))
DURATION = int(os.environ.get("BENCH_DURATION", "8"))
STEPS = os.environ.get(
    "BENCH_STEPS", "machine webhook healthz runs metrics sync backup lambda soak"
).split()
CONNECTIONS = [1, 2, 4, 8, 16, 32, 64]
HEADLINE = (16, 64)
SECRET = "bench-secret-value"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
RELEASE = TARGET / "release"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def need(tool: str, package: str) -> None:
    if shutil.which(tool):
        return
    log(f"installing {package}")
    if subprocess.run(["apt-get", "install", "-y", "-qq", package], capture_output=True).returncode:
        run(["apt-get", "update", "-qq"], capture_output=True)
        run(["apt-get", "install", "-y", "-qq", package], capture_output=True)


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


# ---------------------------------------------------------------------------------------------


def step_machine() -> None:
    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal:")),
        "0",
    )
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    for key, value in [
        ("date", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", commit or "unknown"),
        ("cores", os.cpu_count()),
        ("memory", f"{int(mem) / 1048576:.1f} GiB"),
        ("cpu", cpu),
        ("kernel", platform.release()),
        ("rustc", version(["rustc", "--version"])),
        ("PostgreSQL", version(["psql", "--version"])),
        ("wrk", version(["wrk", "--version"])),
        ("webhook (peer)", version(["webhook", "-version"])),
        ("prometheus-node-exporter (peer)", version(["prometheus-node-exporter", "--version"])),
        ("rclone (peer)", version(["rclone", "version"])),
        ("reading-sync documents per run (BENCH_DOCS)", os.environ.get("BENCH_DOCS", "2000")),
        ("load average at start", soak.loadavg()),
    ]:
        info(key, value)


# ---------------------------------------------------------------------------------------------
# Signed webhook deliveries.

# scripts/signed-deliveries.lua makes the requests; LUA_COMMON counts their answers. Both define
# setup(thread), so the pair is chained.
LUA_CHAIN = """
local deliveries_setup = setup
"""
LUA_CHAINED = """
local common_setup = setup
function setup(thread)
  deliveries_setup(thread)
  common_setup(thread)
end
"""


def deliveries_script(path: Path) -> None:
    signed = (ROOT / "scripts" / "signed-deliveries.lua").read_text()
    path.write_text(signed + LUA_CHAIN + soak.LUA_COMMON + LUA_CHAINED)


def wrk(url: str, conns: int, script: Path | None, *args: str,
        env: dict[str, str] | None = None) -> dict:
    """One wrk run; returns the result line of soak's LUA_COMMON (statuses, latency in µs)."""
    threads = min(2, conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{DURATION}s", "--timeout", "10s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    cmd += [url, "--", str(threads), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DURATION + 120,
                         env={**os.environ, **(env or {})}).stdout
    m = re.search(r"^SOAK-RESULT (.*)$", out, re.M)
    if not m:
        raise SystemExit(f"bench: wrk printed no result for {url}:\n{out[-2000:]}")
    return json.loads(m.group(1))


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks of a process, its reaped children included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15])


def settle(what: str, procs: list[subprocess.Popen]) -> None:
    """Waits until `procs` use no CPU (≤ 1 tick in 0.5 s, at most 60 s), so that the next run
    does not share the machine with the last one's leftovers. Seen here: after a run of
    deliveries, Debian's `webhook` keeps a core busy for seconds (about 1.7 s of CPU went into
    the next hub run, halving it), so alternating runs without this measured the peer's tail."""
    t0 = time.monotonic()
    last = [cpu_ticks(p.pid) for p in procs]
    while time.monotonic() - t0 < 60:
        time.sleep(0.5)
        now = [cpu_ticks(p.pid) for p in procs]
        if all(b - a <= 1 for a, b in zip(last, now)):
            break
        last = now
    waited = time.monotonic() - t0
    if waited > 1:
        log(f"{what}: waited {waited:.1f} s for the servers to go idle")


def start_gateway(work: Path, name: str, env_extra: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = soak.free_port()
    data = work / f"data-{name}"
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(HUB_DATA_DIR=str(data), HUB_PUBLIC_PORT="0", RUST_LOG="warn", **env_extra)
    logfile = work / f"gateway-{name}.log"
    with open(logfile, "wb") as lf:
        gw = subprocess.Popen([str(RELEASE / "hub-gateway"), "serve", "--port", str(port)],
                              cwd=work, env=env, stdout=lf, stderr=subprocess.STDOUT)
    soak.wait_ready(gw, logfile, port)
    return gw, port


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing listens on 127.0.0.1:{port}")


def step_webhook(work: Path) -> None:
    sha = soak.make_gitops(work / "gitops")
    gw, port = start_gateway(work, "webhook", {
        "GITHUB_WEBHOOK_SECRET": SECRET, "GITOPS_BASE_DIR": str(work / "gitops")})
    peer_port = soak.free_port()
    hooks = work / "hooks.json"
    hooks.write_text(json.dumps([{
        "id": "gitops", "execute-command": "/bin/true", "response-message": "ok",
        "trigger-rule": {"match": {"type": "payload-hmac-sha256", "secret": SECRET,
                                   "parameter": {"source": "header",
                                                 "name": "X-Hub-Signature-256"}}}}]))
    peer = subprocess.Popen(["webhook", "-hooks", str(hooks), "-ip", "127.0.0.1",
                             "-port", str(peer_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(peer_port)
    targets = {
        "hub": (f"http://127.0.0.1:{port}/api/webhook/gitops", "202"),
        "webhook": (f"http://127.0.0.1:{peer_port}/hooks/gitops", "200"),
    }
    script = work / "webhook.lua"
    deliveries_script(script)
    try:
        for conns in CONNECTIONS:
            for i in range(RUNS if conns in HEADLINE else 1):
                for series, (url, ok) in targets.items():
                    settle(f"webhook {series} c={conns}", [gw, peer])
                    r = wrk(url, conns, script, env={
                        "BENCH_SECRET": SECRET, "BENCH_REPO": "app", "BENCH_BRANCH": "main",
                        "BENCH_NONCE": f"{series}-{conns}-{i}-{uuid.uuid4().hex[:8]}"})
                    secs = r["duration_us"] / 1e6
                    good = r["statuses"].get(ok, 0)
                    other = {k: v for k, v in r["statuses"].items() if k != ok}
                    if other:
                        log(f"webhook {series} c={conns}: answers other than {ok}: {other}")
                    rate = good / secs
                    emit("webhook_rps", series, round(rate, 1), x=conns)
                    emit("webhook_p50_ms", series, r["latency_us"]["p50"] / 1000, x=conns)
                    emit("webhook_p99_ms", series, r["latency_us"]["p99"] / 1000, x=conns)
                    log(f"webhook {series} c={conns} run {i + 1}: {rate:,.0f} req/s, "
                        f"p99 {r['latency_us']['p99'] / 1000:.2f} ms")
    finally:
        stop(peer)
        stop(gw)


def step_healthz(work: Path) -> None:
    gw, port = start_gateway(work, "healthz", {})
    hello_port = soak.free_port()
    hello = subprocess.Popen([str(RELEASE / "examples" / "bare-hello"), str(hello_port)])
    wait_port(hello_port)
    script = work / "healthz.lua"
    script.write_text(soak.lua_fixed("GET", {}))
    try:
        for i in range(RUNS):
            for series, p in (("hub", port), ("bare-axum", hello_port)):
                settle(f"healthz {series}", [gw, hello])
                r = wrk(f"http://127.0.0.1:{p}/healthz", 16, script)
                rate = r["statuses"].get("200", 0) / (r["duration_us"] / 1e6)
                emit("healthz_rps", series, round(rate, 1))
                log(f"healthz {series} run {i + 1}: {rate:,.0f} req/s")
    finally:
        stop(hello)
        stop(gw)


def step_runs(_work: Path) -> None:
    for i in range(RUNS):
        step_script(["cargo", "bench", "-q", "-p", "hub-runtime", "--bench", "runs"], {})
        log(f"runs: run {i + 1} done")


def step_script(cmd: list[str], env: dict[str, str]) -> None:
    run(cmd, cwd=ROOT, env={**os.environ, **env, "BENCH_RESULTS": str(RESULTS)})


def step_metrics(_work: Path) -> None:
    per_request = " ".join(["10x1", "100x1", "2000x1"] + ["500x1"] * RUNS)
    step_script(["scripts/bench-metrics.sh"], {
        "BENCH_INGEST": per_request, "BENCH_COPY_RUNS": str(RUNS)})


def step_sync(_work: Path) -> None:
    docs = os.environ.get("BENCH_DOCS", "2000")
    for i in range(RUNS):
        step_script(["cargo", "bench", "-q", "-p", "reading-sync", "--bench", "sync"],
                    {"BENCH_DOCS": docs})
        log(f"sync: run {i + 1} done")


def step_backup(_work: Path) -> None:
    step_script(["scripts/bench-backup.sh"], {
        "BENCH_BACKUP_RUNS": str(RUNS),
        "BENCH_BACKUP_MIB": os.environ.get("BENCH_BACKUP_MIB", "1024")})


def step_lambda(_work: Path) -> None:
    step_script(["scripts/bench-lambda.sh"], {"RUNS": str(max(RUNS, 5))})


def step_soak(_work: Path) -> None:
    step_script([sys.executable, "bench/soak.py"], {})


STEP_FNS = {
    "webhook": step_webhook, "healthz": step_healthz, "runs": step_runs,
    "metrics": step_metrics, "sync": step_sync, "backup": step_backup,
    "lambda": step_lambda, "soak": step_soak,
}


def main() -> int:
    unknown = [s for s in STEPS if s != "machine" and s not in STEP_FNS]
    if unknown:
        log(f"unknown steps {unknown}; known: machine {' '.join(STEP_FNS)}")
        return 2
    for tool, package in (("wrk", "wrk"), ("webhook", "webhook"), ("curl", "curl"),
                          ("git", "git"), ("pgrep", "procps")):
        need(tool, package)
    log("building release binaries")
    run(["cargo", "build", "--release", "-q", "-p", "local-gateway", "-p", "host-collector",
         "-p", "hub-bench"], cwd=ROOT)
    run(["cargo", "build", "--release", "-q", "-p", "local-gateway", "--example", "bare-hello"],
        cwd=ROOT)
    if os.environ.get("BENCH_KEEP_RESULTS") != "1":
        RESULTS.write_text("")
    os.environ["BENCH_RESULTS"] = str(RESULTS)
    if "machine" in STEPS:
        step_machine()
    work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    try:
        for name in STEPS:
            if name == "machine":
                continue
            log(f"step {name} (load average {soak.loadavg()})")
            t0 = time.monotonic()
            STEP_FNS[name](work)
            log(f"step {name} took {time.monotonic() - t0:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    run([str(RELEASE / "hub-bench"), "report", "--results", str(RESULTS),
         "--out", str(ROOT / "BENCHMARKS.md"), "--plots", str(ROOT / "bench" / "plots")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
