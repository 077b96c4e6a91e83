#!/usr/bin/env bash
# make bench: each function's Lambda bootstrap (x86_64, from make lambda-build) — its size, and
# its init time: from exec to its first `GET /2018-06-01/runtime/invocation/next`, i.e. ready for
# the first event, with HUB_DATA_DIR in a fresh directory (the SQLite store created and migrated,
# as on a cold Lambda with HUB_DATA_DIR=/tmp). Median of RUNS (5) starts. Aim: ≤ 30 ms, ≤ 15 MB.
# The arm64 sizes (make lambda-build-arm64; template.yaml's default) are measured when built.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
python3 - "$RUNS" $(make -s lambda-functions) <<'PY'
import http.server, os, statistics, subprocess, sys, tempfile, threading, time
sys.path.insert(0, "bench")
from bench_results import emit  # for make bench's report, when BENCH_RESULTS is set

runs, functions = int(sys.argv[1]), sys.argv[2:]
first_poll = threading.Event()

class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            first_poll.set()
        # Hold the long poll; the bootstrap is killed once its first poll is seen.
        time.sleep(5)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
threading.Thread(target=server.serve_forever, daemon=True).start()
api = f"127.0.0.1:{server.server_address[1]}"

print(f"{'function':<16} {'init ms (median)':>17} {'x86_64 MB':>10} {'arm64 MB':>9}")
for name in functions:
    bootstrap = f"target/lambda/{name}/bootstrap"
    if not os.path.exists(bootstrap):
        sys.exit(f"no {bootstrap}: run make lambda-build first")
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as data:
            config = os.path.join(data, "empty-hub.toml")
            open(config, "w").close()
            env = {"PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": api,
                   "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": "1",
                   "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "HUB_DATA_DIR": data,
                   "HUB_CONFIG": config, "RUST_LOG": "warn"}
            first_poll.clear()
            start = time.monotonic()
            proc = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL)
            if not first_poll.wait(10):
                proc.kill()
                sys.exit(f"{name}: no first poll within 10 s")
            times.append((time.monotonic() - start) * 1000)
            emit("lambda_init_ms", name, round(times[-1], 2))
            proc.kill()
            proc.wait()
    emit("lambda_size_mb", name, round(os.path.getsize(bootstrap) / 1e6, 2))
    arm = f"target/lambda-arm64/{name}/bootstrap"
    arm_mb = f"{'-':>9}"
    if os.path.exists(arm):
        emit("lambda_size_arm64_mb", name, round(os.path.getsize(arm) / 1e6, 2))
        arm_mb = f"{os.path.getsize(arm) / 1e6:9.1f}"
    print(f"{name:<16} {statistics.median(times):17.1f} {os.path.getsize(bootstrap) / 1e6:10.1f} {arm_mb}")
server.shutdown()
PY
