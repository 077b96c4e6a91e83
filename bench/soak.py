#!/usr/bin/env python3
"""Soak test of the release gateway: SOAK_SECS (default 600) of mixed load on loopback.

Run by `make soak`, which builds target/release/hub-gateway and installs wrk first; this script
builds nothing. It starts the gateway on a free 127.0.0.1 port with a fresh SQLite data dir, a
GITOPS_BASE_DIR holding one real checkout `app` (empty `.gitops`, cloned from a bare
`origin.git`), then runs all of these at once for SOAK_SECS:

  webhook   wrk -t1 -c2: signed pushes to /api/webhook/gitops, cycling SOAK_WEBHOOK_BODIES (2000)
            distinct bodies (fresh ones answer 202 and sync `app`, replays 200 "duplicate");
            throttled to one request per SOAK_WEBHOOK_DELAY_MS (100) per connection
  metrics   wrk -t1 -c2: POST /api/metrics with the collector token, cycling SOAK_METRICS_BODIES
            (2000) distinct batches of 5 samples x 3 metric types (replays are all duplicates)
  runs      wrk -t1 -c2: GET /api/runs?limit=50
  status    wrk -t1 -c2: GET / (the status page)
  healthz   wrk -t1 -c1 --latency: GET /healthz (p50/p99/max)
  junk      wrk -t1 -c8: POST /api/metrics without Authorization, alternating with
            GET /api/webhook/gitops; must be refused (401/405) and never stored as runs
  slowloris a thread holding SOAK_SLOWLORIS (200) connections that send a request line and Host,
            then one header byte every 2 s; reopened whenever the server closes one
  rss       VmRSS of the gateway every 10 s

Then it reads /metrics, stops the gateway with SIGTERM (must exit 0 within 30 s), counts
`hub_runs` by function/outcome/status, prints a table, and exits 1 if a criterion failed:

  - real clients (every load but junk/slowloris) got no 429 and no 5xx, and only 2xx at all
  - the junk load got only 401/405
  - RSS after the warm-up (60 s, or half of a shorter run) stays within +-10 % of its value then
  - /healthz p99 < 50 ms
  - no hub_runs row came from junk (no refused status stored; no metrics-flush row beyond the
    pushes the real client saw answered, give or take the requests in flight when wrk stopped)
  - SIGTERM: exit status 0 within 30 s

Python 3.11 standard library only, plus wrk and git on PATH (sqlite3 CLI optional).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench_results import emit

ROOT = Path(__file__).resolve().parent.parent
SECS = int(os.environ.get("SOAK_SECS", "600"))
WARMUP = min(int(os.environ.get("SOAK_WARMUP_SECS", "60")), SECS // 2)
WEBHOOK_DELAY_MS = int(os.environ.get("SOAK_WEBHOOK_DELAY_MS", "100"))
WEBHOOK_BODIES = int(os.environ.get("SOAK_WEBHOOK_BODIES", "2000"))
METRICS_BODIES = int(os.environ.get("SOAK_METRICS_BODIES", "2000"))
SLOWLORIS = int(os.environ.get("SOAK_SLOWLORIS", "200"))
KEEP = os.environ.get("SOAK_KEEP") == "1"

SECRET = "soak-secret-value"
TOKEN = "soak-token-value"
RSS_LIMIT = 0.10
HEALTHZ_P99_MS = 50.0
RSS_EVERY = 10
TERM_WAIT = 30
# Statuses the gateway counts as refusals and never stores as runs.
REFUSED = ("401", "403", "404", "405", "413", "415", "429")


def log(msg: str) -> None:
    print(f"soak: {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lua_str(s: str) -> str:
    """A Lua long-bracket string literal holding s verbatim."""
    level = 0
    while f"]{'=' * level}]" in s:
        level += 1
    eq = "=" * level
    return f"[{eq}[{s}]{eq}]"


# ---------------------------------------------------------------------------------------------
# wrk scripts. Every one counts statuses in `response` and prints one JSON line from `done`.

LUA_COMMON = r"""
counts = {}
function response(status, headers, body)
  local k = tostring(status)
  counts[k] = (counts[k] or 0) + 1
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts") or {}) do agg[k] = (agg[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(agg) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'SOAK-RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ",")))
end
"""


def lua_cycling(requests: list[tuple[str, str, dict[str, str], str]], delay_ms: int) -> str:
    """A script sending the given (method, path, headers, body) requests in turn."""
    out = ["local specs = {"]
    for method, path, headers, body in requests:
        hs = ", ".join(f"[ {lua_str(k)} ] = {lua_str(v)}" for k, v in headers.items())
        out.append(f"  {{{lua_str(method)}, {lua_str(path)}, {{{hs}}}, {lua_str(body)}}},")
    out.append("}")
    out.append(
        """
local reqs = {}
local idx = 0
function init(args)
  for i, s in ipairs(specs) do
    reqs[i] = wrk.format(s[1], s[2], s[3], s[4] ~= "" and s[4] or nil)
  end
end
function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
"""
    )
    if delay_ms > 0:
        out.append(f"function delay() return {delay_ms} end\n")
    return "\n".join(out) + LUA_COMMON


def lua_fixed(method: str, headers: dict[str, str], body: str = "") -> str:
    out = [f"wrk.method = {lua_str(method)}"]
    for k, v in headers.items():
        out.append(f"wrk.headers[ {lua_str(k)} ] = {lua_str(v)}")
    if body:
        out.append(f"wrk.body = {lua_str(body)}")
    return "\n".join(out) + "\n" + LUA_COMMON


def webhook_requests(sha: str) -> list[tuple[str, str, dict[str, str], str]]:
    reqs = []
    for n in range(WEBHOOK_BODIES):
        body = json.dumps(
            {"ref": "refs/heads/main", "after": sha, "repository": {"name": "app"}, "n": n},
            separators=(",", ":"),
        )
        sig = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
        headers = {
            "X-GitHub-Event": "push",
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={sig}",
        }
        reqs.append(("POST", "/api/webhook/gitops", headers, body))
    return reqs


def metrics_requests() -> list[tuple[str, str, dict[str, str], str]]:
    """Distinct batches (5 samples, cpu/memory/network each) of one host sampled once a minute
    like hub-collector (so the last 24 h hold 1440 samples, as in real use), times with a UTC
    offset, all in the past so none is refused as future; replays after one cycle are all
    duplicates."""
    base = dt.datetime.now(dt.timezone(dt.timedelta(hours=2))).replace(second=0, microsecond=0)
    base -= dt.timedelta(minutes=METRICS_BODIES * 5 + 5)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    reqs = []
    for n in range(METRICS_BODIES):
        samples = []
        for k in range(5):
            t = base + dt.timedelta(minutes=n * 5 + k)
            cpu = round((n * 7 + k * 13) % 1000 / 10, 1)
            samples.append(
                {
                    "time": t.isoformat(),
                    "host": "soak-host",
                    "os": "Debian GNU/Linux 12 (bookworm)",
                    "metrics": {
                        "cpu": {"total": cpu, "cores": [cpu, round(100 - cpu, 1)]},
                        "memory": {"total": 8_000_000_000, "used": 1_000_000_000 + n * 4096 + k},
                        "network": [
                            {"interface": "eth0", "rx_bytes": n * 1000 + k, "tx_bytes": n * 500 + k}
                        ],
                    },
                }
            )
        body = json.dumps({"samples": samples}, separators=(",", ":"))
        reqs.append(("POST", "/api/metrics", headers, body))
    return reqs


def junk_requests() -> list[tuple[str, str, dict[str, str], str]]:
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    body = json.dumps(
        {"samples": [{"time": now, "host": "junk", "os": "", "metrics": {"cpu": {"total": 1}}}]},
        separators=(",", ":"),
    )
    return [
        ("POST", "/api/metrics", {"Content-Type": "application/json"}, body),
        ("GET", "/api/webhook/gitops", {}, ""),
    ]


# ---------------------------------------------------------------------------------------------


class Slowloris(threading.Thread):
    """Holds `count` connections each sending a request line, Host, then one header byte every
    2 s (never ending the header line). Counts how often the server closed one; reopens it."""

    TRICKLE = b"X-Slow-Loris-Header-Name-That-Never-Ends-"

    def __init__(self, port: int, count: int, until: float):
        super().__init__(daemon=True, name="slowloris")
        self.port, self.count, self.until = port, count, until
        self.closed_by_server = 0
        self.opened = 0
        self.connect_failures = 0
        self.answers: dict[str, int] = {}
        self.max_held = 0
        self.socks: list[list] = []  # [socket | None, bytes sent, bytes received]

    def _open(self):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", self.port))
            s.sendall(b"POST /api/metrics HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            s.close()
            self.connect_failures += 1
            return None
        s.setblocking(False)
        self.opened += 1
        return s

    def _server_closed(self, entry):
        sock, _, got = entry
        m = re.match(rb"HTTP/1\.[01] (\d{3})", got)
        key = m.group(1).decode() if m else ("none" if not got else "other")
        self.answers[key] = self.answers.get(key, 0) + 1
        self.closed_by_server += 1
        sock.close()
        entry[0], entry[1], entry[2] = self._open(), 0, b""

    def run(self):
        self.socks = [[self._open(), 0, b""] for _ in range(self.count)]
        while time.monotonic() < self.until:
            tick = time.monotonic()
            for entry in self.socks:
                if time.monotonic() >= self.until:
                    break
                if entry[0] is None:
                    entry[0], entry[1], entry[2] = self._open(), 0, b""
                    continue
                sock = entry[0]
                closed = False
                try:
                    while True:
                        data = sock.recv(4096)
                        if not data:
                            closed = True
                            break
                        entry[2] += data
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
                if not closed:
                    i = entry[1] % len(self.TRICKLE)
                    try:
                        sock.send(self.TRICKLE[i : i + 1])
                        entry[1] += 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed = True
                if closed:
                    self._server_closed(entry)
            self.max_held = max(self.max_held, sum(1 for e in self.socks if e[0] is not None))
            time.sleep(max(0.0, 2.0 - (time.monotonic() - tick)))
        for entry in self.socks:
            if entry[0] is not None:
                entry[0].close()


class RssSampler(threading.Thread):
    """VmRSS of the gateway every RSS_EVERY seconds, and the largest store files seen."""

    def __init__(self, pid: int, start: float, until: float, data: Path):
        super().__init__(daemon=True, name="rss")
        self.pid, self.start_t, self.until, self.data = pid, start, until, data
        self.samples: list[tuple[float, int]] = []  # (seconds since start, KiB)
        self.peak_db = self.peak_wal = 0

    def rss_kib(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def run(self):
        n = 0
        while True:
            at = self.start_t + n * RSS_EVERY
            if at > self.until + 0.5:
                break
            time.sleep(max(0.0, at - time.monotonic()))
            kib = self.rss_kib()
            if kib is not None:
                self.samples.append((time.monotonic() - self.start_t, kib))
            for name, attr in (("hub.db", "peak_db"), ("hub.db-wal", "peak_wal")):
                try:
                    size = (self.data / name).stat().st_size
                except OSError:
                    continue
                setattr(self, attr, max(getattr(self, attr), size))
            n += 1


# ---------------------------------------------------------------------------------------------


def git(*args: str, cwd: Path | None = None) -> str:
    cmd = ["git", "-c", "user.name=soak", "-c", "user.email=soak@localhost",
           "-c", "init.defaultBranch=main", *args]
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_gitops(base: Path) -> str:
    """GITOPS_BASE_DIR with `app` cloned from the bare `origin.git`; returns origin's HEAD."""
    base.mkdir()
    git("init", "-q", "--bare", str(base / "origin.git"))
    git("clone", "-q", str(base / "origin.git"), str(base / "app"))
    app = base / "app"
    (app / ".gitops").write_text("")
    (app / "README").write_text("soak test checkout\n")
    git("add", ".gitops", "README", cwd=app)
    git("commit", "-q", "-m", "soak: opt in", cwd=app)
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=app)
    git("branch", "-q", "--set-upstream-to=origin/main", cwd=app)
    return git("rev-parse", "HEAD", cwd=app)


def count_runs(db: Path) -> list[tuple[str, str, str, int]]:
    """hub_runs grouped by function, outcome and the HTTP status its summary starts with
    ("sync" for background runs, whose summary is not an HTTP answer)."""
    sql = (
        "SELECT function, outcome, "
        "CASE WHEN summary GLOB '[1-5][0-9][0-9] *' THEN substr(summary, 1, 3) ELSE 'sync' END, "
        "COUNT(*) FROM hub_runs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    if not db.exists():
        return []
    if shutil.which("sqlite3"):
        out = subprocess.run(
            ["sqlite3", "-readonly", "-separator", "\t", str(db), sql],
            check=True, capture_output=True, text=True,
        ).stdout
        rows = []
        for line in out.splitlines():
            f, o, s, n = line.split("\t")
            rows.append((f, o, s, int(n)))
        return rows
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return [(f, o, s, int(n)) for f, o, s, n in c.execute(sql)]


def http_get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.status, r.read().decode()


def parse_metrics(text: str) -> tuple[dict[str, int], dict[tuple[str, str], int], int | None]:
    by_status: dict[str, int] = {}
    by_route: dict[tuple[str, str], int] = {}
    refused = None
    for line in text.splitlines():
        m = re.match(r'hub_http_requests_total\{(.*)\} (\S+)$', line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            n = int(float(m.group(2)))
            st = labels.get("status", "?")
            by_status[st] = by_status.get(st, 0) + n
            key = (labels.get("route", "?"), st)
            by_route[key] = by_route.get(key, 0) + n
        m = re.match(r"hub_http_connections_refused_total(?:\{\})? (\S+)$", line)
        if m:
            refused = int(float(m.group(1)))
    return by_status, by_route, refused


def wait_ready(proc: subprocess.Popen, logfile: Path, port: int) -> str:
    """Waits for /healthz 200; returns the address from the 'hub-gateway listening' log line
    (or 127.0.0.1:<port> when the line is not there)."""
    deadline = time.monotonic() + 60
    addr = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"soak: gateway exited ({proc.returncode}) at start:\n"
                             + logfile.read_text()[-4000:])
        if addr is None:
            for line in logfile.read_text(errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                fields = rec.get("fields", rec)
                if fields.get("message") == "hub-gateway listening":
                    addr = fields.get("addr") or rec.get("addr")
                    break
        try:
            if http_get(port, "/healthz")[0] == 200:
                return addr or f"127.0.0.1:{port}"
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("soak: gateway did not answer /healthz within 60 s")


# ---------------------------------------------------------------------------------------------


def main() -> int:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "release" / "hub-gateway"
    if not binary.is_file():
        log(f"{binary} not found; `make soak` builds it (cargo build --release -p local-gateway)")
        return 2
    for tool in ("wrk", "git"):
        if not shutil.which(tool):
            log(f"{tool} not found on PATH (make soak installs wrk)")
            return 2

    load_start = loadavg()
    work = Path(tempfile.mkdtemp(prefix="hub-soak-"))
    data = work / "data"
    base = work / "gitops"
    sha = make_gitops(base)
    port = free_port()
    logfile = work / "gateway.log"

    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(
        HUB_DATA_DIR=str(data),
        GITHUB_WEBHOOK_SECRET=SECRET,
        GITOPS_BASE_DIR=str(base),
        HUB_COLLECTOR_TOKEN=TOKEN,
        # The public listener on a free port too, never the fixed 8086 another run may hold.
        HUB_PUBLIC_PORT="0",
        # warn keeps the log small; the gateway's own lifecycle lines (listening, stopped) stay.
        HUB_LOG="warn",
        RUST_LOG="warn,local_gateway=info",
    )
    with open(logfile, "wb") as lf:
        gw = subprocess.Popen(
            [str(binary), "serve", "--port", str(port)],
            cwd=work, env=env, stdout=lf, stderr=subprocess.STDOUT,
        )
    failures: list[str] = []
    try:
        addr = wait_ready(gw, logfile, port)
        runs_before = sum(n for *_, n in count_runs(data / "hub.db"))
        log(f"gateway pid {gw.pid} listening on {addr}; {SECS} s of load (warm-up {WARMUP} s); "
            f"load average {load_start}")

        url = f"http://127.0.0.1:{port}"
        scripts = {
            "webhook": lua_cycling(webhook_requests(sha), WEBHOOK_DELAY_MS),
            "metrics": lua_cycling(metrics_requests(), 0),
            "runs": lua_fixed("GET", {}),
            "status": lua_fixed("GET", {}),
            "healthz": lua_fixed("GET", {}),
            "junk": lua_cycling(junk_requests(), 0),
        }
        loads = [  # name, connections, path, extra wrk args
            ("webhook", 2, "/api/webhook/gitops", []),
            ("metrics", 2, "/api/metrics", []),
            ("runs", 2, "/api/runs?limit=50", []),
            ("status", 2, "/", []),
            ("healthz", 1, "/healthz", ["--latency"]),
            ("junk", 8, "/api/metrics", []),
        ]
        procs = {}
        t0 = time.monotonic()
        until = t0 + SECS
        rss = RssSampler(gw.pid, t0, until, data)
        rss.start()
        slow = Slowloris(port, SLOWLORIS, until)
        slow.start()
        for name, conns, path, extra in loads:
            lua = work / f"{name}.lua"
            lua.write_text(scripts[name])
            out = open(work / f"{name}.out", "wb")
            procs[name] = subprocess.Popen(
                ["wrk", "-t1", f"-c{conns}", f"-d{SECS}s", "--timeout", "10s", *extra,
                 "-s", str(lua), url + path],
                stdout=out, stderr=subprocess.STDOUT,
            )
        for name, p in procs.items():
            try:
                p.wait(timeout=SECS + 120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                failures.append(f"wrk ({name}) did not end")
        slow.join(timeout=30)
        rss.join(timeout=30)
        elapsed = time.monotonic() - t0
        load_end = loadavg()

        results = {}
        for name, *_ in loads:
            text = (work / f"{name}.out").read_text(errors="replace")
            m = re.search(r"^SOAK-RESULT (.*)$", text, re.M)
            if not m:
                failures.append(f"wrk ({name}) printed no result:\n{text[-2000:]}")
                results[name] = None
            else:
                results[name] = json.loads(m.group(1))

        metrics_text = http_get(port, "/metrics")[1]
        by_status, by_route, conn_refused = parse_metrics(metrics_text)
        gw_alive_at_end = gw.poll() is None

        # Shutdown.
        term_t = time.monotonic()
        exit_code = None
        if gw_alive_at_end:
            gw.send_signal(signal.SIGTERM)
            try:
                exit_code = gw.wait(timeout=TERM_WAIT)
            except subprocess.TimeoutExpired:
                gw.kill()
                gw.wait()
        else:
            exit_code = gw.returncode
        term_secs = time.monotonic() - term_t

        runs = count_runs(data / "hub.db")
        runs_after = sum(n for *_, n in runs)
        db_file = data / "hub.db"
        wal_file = data / "hub.db-wal"
        db_bytes = db_file.stat().st_size if db_file.exists() else 0
        wal_bytes = wal_file.stat().st_size if wal_file.exists() else 0
        log_lines = logfile.read_text(errors="replace").splitlines()
        levels: dict[str, int] = {}
        for line in log_lines:
            try:
                lvl = str(json.loads(line).get("level", "?")).upper()
            except (ValueError, AttributeError):
                lvl = "?"
            levels[lvl] = levels.get(lvl, 0) + 1
        log_warn, log_err = levels.get("WARN", 0), levels.get("ERROR", 0)

        # ---- the table ----------------------------------------------------------------------
        real = ["webhook", "metrics", "runs", "status", "healthz"]
        print()
        print(f"Soak: {SECS} s of mixed load on {addr} (hub-gateway release, SQLite store), "
              f"{elapsed:.0f} s wall")
        print(f"load average (1/5/15 min): start {load_start}, end {load_end}; "
              f"{os.cpu_count()} CPUs")
        print()
        hdr = f"{'load':<10} {'conns':>5} {'requests':>10} {'req/s':>9}  {'statuses':<34} {'socket errors'}"
        print(hdr)
        print("-" * len(hdr))
        for name, conns, *_ in loads:
            r = results[name]
            if r is None:
                print(f"{name:<10} {conns:>5} {'-':>10} {'-':>9}  (no result)")
                continue
            secs = r["duration_us"] / 1e6 or 1
            sts = " ".join(f"{k}:{v}" for k, v in sorted(r["statuses"].items()))
            e = r["errors"]
            errs = ", ".join(f"{k} {v}" for k, v in e.items() if k != "status" and v) or "none"
            print(f"{name:<10} {conns:>5} {r['requests']:>10} {r['requests'] / secs:>9.1f}  "
                  f"{sts:<34} {errs}")
        print(f"{'slowloris':<10} {SLOWLORIS:>5} {slow.opened:>10} {'':>9}  "
              f"closed by server {slow.closed_by_server} "
              f"(server's answer before closing: "
              f"{', '.join(f'{k}:{v}' for k, v in sorted(slow.answers.items())) or '-'}); "
              f"connect failures {slow.connect_failures}")
        print()

        real_429 = sum(results[n]["statuses"].get("429", 0) for n in real if results[n])
        real_5xx = sum(v for n in real if results[n]
                       for k, v in results[n]["statuses"].items() if k.startswith("5"))
        real_other = {n: {k: v for k, v in results[n]["statuses"].items() if not k.startswith("2")}
                      for n in real if results[n]}
        real_other = {n: d for n, d in real_other.items() if d}
        junk = results["junk"]
        junk_bad = {k: v for k, v in (junk or {}).get("statuses", {}).items() if k not in ("401", "405")}

        hz = results["healthz"]
        hz_p50 = hz["latency_us"]["p50"] / 1000 if hz else float("nan")
        hz_p99 = hz["latency_us"]["p99"] / 1000 if hz else float("nan")
        hz_max = hz["latency_us"]["max"] / 1000 if hz else float("nan")

        after_warm = [(t, k) for t, k in rss.samples if t >= WARMUP - 0.5]
        if after_warm:
            warm = after_warm[0][1]
            vals = [k for _, k in after_warm]
            lo, hi, last = min(vals), max(vals), vals[-1]
            spread_lo, spread_hi = (lo - warm) / warm, (hi - warm) / warm
        all_rss = [k for _, k in rss.samples]
        # For make bench's report (nothing is written unless BENCH_RESULTS is set).
        for t, k in rss.samples:
            emit("soak_rss_mib", "hub", round(k / 1024, 2), x=round(t))
        if after_warm:
            emit("soak_rss_end_mib", "hub", round(last / 1024, 2))
            emit("soak_rss_drift_pct", "hub", round(max(abs(spread_lo), abs(spread_hi)) * 100, 2))

        # Runs: from junk = rows with a refused status; metrics-flush rows beyond the real
        # client's 2xx (wrk stops with up to `conns` requests the gateway may still finish).
        refused_rows = sum(n for f, o, s, n in runs if s in REFUSED)
        mf_rows = sum(n for f, o, s, n in runs if f == "metrics-flush")
        mf_ok = sum(v for k, v in results["metrics"]["statuses"].items()
                    if k.startswith("2")) if results["metrics"] else 0
        mf_excess = max(0, mf_rows - mf_ok - 2)
        wh_http_rows = sum(n for f, o, s, n in runs if f == "webhook-gitops" and s != "sync")
        wh_ok = sum(v for k, v in results["webhook"]["statuses"].items()
                    if k.startswith("2")) if results["webhook"] else 0
        wh_excess = max(0, wh_http_rows - wh_ok - 2)
        junk_rows = refused_rows + mf_excess + wh_excess

        def row(label: str, value: str, ok: bool | None = None) -> None:
            mark = "" if ok is None else ("  ok" if ok else "  FAIL")
            print(f"{label:<52} {value}{mark}")

        row("real clients: 429 / 5xx", f"{real_429} / {real_5xx}", real_429 == 0 and real_5xx == 0)
        row("real clients: non-2xx of any kind",
            json.dumps(real_other) if real_other else "none", not real_other)
        row("junk: answers other than 401/405",
            json.dumps(junk_bad) if junk_bad else "none", bool(junk) and not junk_bad)
        if after_warm:
            row(f"RSS at warm-up ({WARMUP} s) first/min/max/last (MiB)",
                f"{warm / 1024:.1f} / {lo / 1024:.1f} / {hi / 1024:.1f} / {last / 1024:.1f}")
            row("RSS spread vs warm-up (limit +-10 %)",
                f"{spread_lo * 100:+.1f} % / {spread_hi * 100:+.1f} %",
                abs(spread_lo) <= RSS_LIMIT and abs(spread_hi) <= RSS_LIMIT)
            row("RSS before warm-up: start / peak (MiB)",
                f"{all_rss[0] / 1024:.1f} / {max(all_rss) / 1024:.1f}")
        else:
            row("RSS samples after warm-up", "none", False)
        row("/healthz latency p50 / p99 / max (ms)",
            f"{hz_p50:.2f} / {hz_p99:.2f} / {hz_max:.2f}", hz_p99 < HEALTHZ_P99_MS)
        row("hub_runs rows before / after", f"{runs_before} / {runs_after}")
        for f, o, s, n in runs:
            row(f"  {f} {o} ({'status ' + s if s != 'sync' else 'background sync'})", str(n))
        row("  metrics-flush rows vs real client's 2xx", f"{mf_rows} vs {mf_ok}")
        row("  webhook-gitops HTTP rows vs real client's 2xx", f"{wh_http_rows} vs {wh_ok}")
        row("hub_runs rows from junk", str(junk_rows), junk_rows == 0)
        for st in ("401", "405", "429"):
            row(f"/metrics hub_http_requests_total status {st}", str(by_status.get(st, 0)))
        srv_5xx = {k: v for k, v in by_status.items() if k.startswith("5") and v}
        row("/metrics hub_http_requests_total 5xx", json.dumps(srv_5xx) if srv_5xx else "0")
        row("/metrics hub_http_connections_refused_total",
            "absent" if conn_refused is None else str(conn_refused))
        row("SIGTERM: exit status / seconds",
            f"{exit_code} / {term_secs:.1f}",
            gw_alive_at_end and exit_code == 0 and term_secs <= TERM_WAIT)
        row("store: hub.db / hub.db-wal, largest seen (MiB)",
            f"{rss.peak_db / 1048576:.1f} / {rss.peak_wal / 1048576:.1f}")
        row("store after shutdown: hub.db / hub.db-wal (MiB)",
            f"{db_bytes / 1048576:.1f} / {wal_bytes / 1048576:.1f}")
        row("gateway log lines (warn / error)", f"{len(log_lines)} ({log_warn} / {log_err})")
        print()

        if real_429 or real_5xx:
            failures.append(f"real clients got 429 ({real_429}) or 5xx ({real_5xx})")
        if real_other:
            failures.append(f"real clients got non-2xx answers: {real_other}")
        if not junk or junk_bad:
            failures.append(f"junk load was not refused with 401/405 only: {junk_bad}")
        if not after_warm:
            failures.append("no RSS sample after the warm-up")
        elif abs(spread_lo) > RSS_LIMIT or abs(spread_hi) > RSS_LIMIT:
            failures.append(f"RSS left +-10 % of its warm-up value ({warm} KiB): "
                            f"min {lo} KiB, max {hi} KiB")
        if not hz_p99 < HEALTHZ_P99_MS:
            failures.append(f"/healthz p99 {hz_p99:.2f} ms is not < {HEALTHZ_P99_MS:.0f} ms")
        if junk_rows:
            failures.append(f"{junk_rows} hub_runs rows came from junk")
        if not gw_alive_at_end:
            failures.append(f"gateway died during the soak (exit status {exit_code})")
        elif exit_code != 0 or term_secs > TERM_WAIT:
            failures.append(f"SIGTERM: exit status {exit_code} after {term_secs:.1f} s "
                            f"(want 0 within {TERM_WAIT} s)")
        if failures:
            print("FAILED:")
            for f in failures:
                print(f"  - {f}")
            print("\ngateway log (last lines):")
            print("\n".join(log_lines[-20:]))
            return 1
        print("PASSED: every criterion held")
        return 0
    finally:
        if gw.poll() is None:
            gw.kill()
            gw.wait()
        if KEEP:
            log(f"work dir kept (SOAK_KEEP=1): {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
