//! `hub-bench report`: turns the results `make bench` collected (JSON lines, see [`results`])
//! into BENCHMARKS.md — the machine, then one row per comparison with the hub's median and
//! spread, the peer's median, their ratio and whether the aim is met — and SVG plots beside it.
//! The harness that measures is `bench/harness.py`; this only reports.

mod plots;
mod results;
mod rows;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "hub-bench",
    about = "make bench's report: BENCHMARKS.md and plots"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the report from a results file.
    Report {
        /// The harness's results (JSON lines).
        #[arg(long, default_value = "bench/results/results.jsonl")]
        results: PathBuf,
        /// The Markdown report.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// Where the SVG plots go (linked from the report, relative to it).
        #[arg(long, default_value = "bench/plots")]
        plots: PathBuf,
    },
}

/// What each metric is and how the harness measures it.
const METHOD: &str = "\
- **Signed webhook deliveries**: `wrk -t2` for 8 s per run against `POST /api/webhook/gitops` of a
  release `hub-gateway` on a fresh SQLite store, with a real opted-in checkout: every request is a
  distinct push (its own body and `X-GitHub-Delivery`, HMAC-SHA256 signed by wrk through
  libcrypto, `scripts/signed-deliveries.lua`), so each one is verified, parsed, claimed in the
  durable replay ledger (committed before its 202) and queued for a sync that really runs
  `git fetch`. The peer is Debian's `webhook` (adnanh/webhook) with a `payload-hmac-sha256` rule
  over the same kind of deliveries, running `/bin/true` per hook. Latency is wrk's `--latency`
  p50/p99. Only 202s (the peer: 200s) count.
- **`/healthz`**: `wrk -t2 -c16` against the gateway's `/healthz` (every middleware layer: request
  id, trace span, panic catcher, timeout, limits, metrics) and against local-gateway's example
  `bare-hello`, the same answer from axum on the same tokio and hyper with no middleware. The
  gateway runs with `RUST_LOG=warn` in every row, so no request logs a line; at the default
  `info` each request also opens its trace span in the JSON log layer (about 0.7 µs more CPU per
  `/healthz` request, measured by hand beside this run).
- **Run recording**: `cargo bench -p hub-runtime --bench runs`: 20,000 run rows written by 16
  tasks, one insert per transaction (`single-…`) against the store's group-committing writer
  (`batched-…`: queued, as the gateway records runs), on a fresh SQLite file and a fresh
  PostgreSQL database.
- **Metrics ingest**, **collector CPU**: `scripts/bench-metrics.sh` (see its header): samples
  pushed over HTTP into PostgreSQL vs a raw `COPY` of the same rows; `hub-collector --once` CPU by
  `perf stat` task-clock vs one `prometheus-node-exporter` scrape.
- **reading-sync**: `cargo bench -p reading-sync --bench sync`: `BENCH_DOCS` documents (machine
  section) from PoloDB into PostgreSQL vs the seed's one-INSERT-one-update-per-document loop.
- **Backup**: `scripts/bench-backup.sh`: the same bytes from a pipe to one Garage, minio-backup
  (without read-back) vs `rclone rcat`; RSS sampled every 0.5 s.
- **Lambda**: `scripts/bench-lambda.sh`: exec of each x86_64 release bootstrap to its first
  `GET /runtime/invocation/next`, fresh SQLite store; sizes of the bootstraps.
- **Soak**: `bench/soak.py` (mixed load, see its header) for `SOAK_SECS`; RSS every 10 s, drift
  measured from the end of the warm-up.
";

fn render(results: &results::Results, plots_rel: &Path, plots: &[PathBuf]) -> String {
    let mut out = String::from(
        "# Benchmarks\n\nWritten by `make bench` (`bench/harness.py`, then `hub-bench report`) from \
         one run on one machine. **Ratios are the headline**: hub and peer ran side by side in the \
         same run, alternating, each run starting once both servers were idle; absolute figures \
         depend on the machine and on what else it was doing. Each figure is the median over \
         the runs, ±half its range as a share of the median.\n\n## Machine\n\n",
    );
    if results.info.is_empty() {
        out.push_str("(not recorded)\n");
    }
    for (key, value) in &results.info {
        out.push_str(&format!("- {key}: {value}\n"));
    }
    out.push_str("\n## Results\n\n");
    out.push_str(&rows::markdown(results, &rows::table(results)));
    out.push_str("\n## Plots\n\n");
    for plot in plots {
        if let Some(name) = plot.file_name().map(|n| n.to_string_lossy()) {
            out.push_str(&format!("![{name}]({}/{name})\n\n", plots_rel.display()));
        }
    }
    out.push_str("## How each row is measured\n\n");
    out.push_str(METHOD);
    out
}

fn report(results: &Path, out: &Path, plots: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(results)
        .map_err(|e| format!("cannot read {}: {e}", results.display()))?;
    let parsed =
        results::Results::parse(&text).map_err(|e| format!("{}: {e}", results.display()))?;
    let drawn = plots::draw_all(&parsed, plots).map_err(|e| format!("cannot draw plots: {e}"))?;
    // Links are relative to the report, so it reads the same on GitHub and on disk.
    let base = out.parent().unwrap_or(Path::new(""));
    let rel = plots.strip_prefix(base).unwrap_or(plots);
    std::fs::write(out, render(&parsed, rel, &drawn))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!(
        "hub-bench: wrote {} and {} plots in {}",
        out.display(),
        drawn.len(),
        plots.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let Command::Report {
        results,
        out,
        plots,
    } = Cli::parse().command;
    match report(&results, &out, &plots) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hub-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
