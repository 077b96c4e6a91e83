//! `hub-collector`: see the crate docs (`lib.rs`) and `hub-collector --help`.

use chrono::Utc;
use clap::Parser;
use host_collector::push::Pusher;
use host_collector::sample::{DEFAULT_EXCLUDED_INTERFACES, Sample, Sampler, SamplerOptions};
use host_collector::spool::Spool;
use host_collector::stats::{self, Stats};
use hub_core::Source;
use hub_core::logs::{self, LogOutput};
use rand::Rng;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Samples this host (CPU, temperatures, memory, disks, network) and pushes the samples to the
/// Observability Hub gateway's metrics-flush function. Samples are spooled on disk first, so
/// nothing is lost while the gateway or its database is down.
#[derive(Debug, Parser)]
#[command(
    name = "hub-collector",
    version,
    after_help = "The push token comes from HUB_COLLECTOR_TOKEN or the file named by HUB_COLLECTOR_TOKEN_FILE."
)]
struct Cli {
    /// Gateway base URL (http:// or https://).
    #[arg(long, env = "HUB_GATEWAY_URL", default_value = "http://127.0.0.1:8085", value_parser = gateway_url)]
    gateway_url: String,
    /// Seconds between samples; samples fall on multiples of it (wall clock).
    #[arg(long, env = "HUB_COLLECTOR_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Random delay of each sample, 0..N seconds, so many hosts do not push at once.
    #[arg(long, env = "HUB_COLLECTOR_JITTER_SECS", default_value_t = 0)]
    jitter: u64,
    /// Where samples wait until the gateway accepts them.
    #[arg(
        long,
        env = "HUB_COLLECTOR_SPOOL_DIR",
        default_value = "var/collector-spool"
    )]
    spool_dir: PathBuf,
    /// Largest spool; beyond it the oldest samples are dropped (and counted).
    #[arg(long, env = "HUB_COLLECTOR_SPOOL_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    spool_max_bytes: u64,
    /// Interface name prefixes to skip (comma-separated).
    #[arg(long, env = "HUB_COLLECTOR_EXCLUDE_INTERFACES", value_delimiter = ',', default_values_t = DEFAULT_EXCLUDED_INTERFACES.iter().map(|s| s.to_string()))]
    exclude_interfaces: Vec<String>,
    /// The host name samples carry (the dashboards filter on it); default: this system's, or
    /// `homelab` when it cannot be read.
    #[arg(long, env = "HUB_COLLECTOR_HOST")]
    host_name: Option<String>,
    /// Where sysfs is mounted; CPU temperatures are read from its `class/hwmon`.
    #[arg(long, env = "HUB_COLLECTOR_SYSFS", default_value = "/sys")]
    sysfs: PathBuf,
    /// Serve the agent's own counters (samples taken, pushed, failed pushes, spool depth, last
    /// push time) as Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9101. Off when
    /// unset. They hold no sample values or secrets, so the listener asks for no credentials.
    #[arg(long, env = "HUB_COLLECTOR_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Take one sample, push it (or spool it), and exit: for a systemd timer. Exits 75
    /// (EX_TEMPFAIL) when the push failed and the sample waits in the spool.
    #[arg(long, conflicts_with_all = ["print", "metrics_addr"])]
    once: bool,
    /// Print one sample as JSON and exit; nothing is pushed or spooled.
    #[arg(long, conflicts_with = "metrics_addr")]
    print: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logs::init(if cli.print {
        LogOutput::Stderr
    } else {
        LogOutput::Stdout
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(run(cli))
}

/// A base URL the collector can push to, checked at start rather than at the first push.
fn gateway_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(
            "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8085".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry a query or fragment".into());
    }
    Ok(text.to_owned())
}

/// `--once` when the sample was spooled but not pushed: a timer unit shows it failed, and the
/// next run (or the agent) delivers it.
const EX_TEMPFAIL: u8 = 75;

fn fail(message: &str) -> ExitCode {
    eprintln!("hub-collector: {message}");
    ExitCode::FAILURE
}

async fn first_sample(sampler: &mut Sampler) -> Sample {
    // CPU usage is a difference between two readings.
    sampler.prime();
    tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
    sampler.sample()
}

async fn run(cli: Cli) -> ExitCode {
    let opts = SamplerOptions {
        excluded_interfaces: cli.exclude_interfaces.clone(),
        sysfs: cli.sysfs.clone(),
        host: cli.host_name.clone().filter(|h| !h.trim().is_empty()),
    };
    let mut sampler = match Sampler::new(opts) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot read this host's statistics: {e}")),
    };
    if cli.print {
        let sample = first_sample(&mut sampler).await;
        return match serde_json::to_string_pretty(&sample) {
            // A closed pipe (`| head`) is not worth a panic.
            Ok(text) => match writeln!(std::io::stdout(), "{text}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            },
            Err(e) => fail(&e.to_string()),
        };
    }
    let source = match Source::load(None) {
        Ok(s) => s.with_openbao().await,
        Err(e) => Err(e),
    };
    let token = match source.and_then(|s| s.secret("collector.token", "HUB_COLLECTOR_TOKEN")) {
        Ok(t) => t,
        Err(e) => return fail(&e.to_string()),
    };
    if token.is_none() {
        tracing::warn!(
            "HUB_COLLECTOR_TOKEN is not set; the gateway will refuse pushes and samples stay spooled"
        );
    }
    let spool = match Spool::open(&cli.spool_dir, cli.spool_max_bytes) {
        Ok(s) => s,
        Err(e) => {
            return fail(&format!(
                "cannot open spool {}: {e}",
                cli.spool_dir.display()
            ));
        }
    };
    let pusher = match Pusher::new(&cli.gateway_url, token) {
        Ok(p) => p,
        Err(e) => return fail(&format!("cannot build HTTP client: {e}")),
    };

    if cli.once {
        let mut sample = first_sample(&mut sampler).await;
        if spool.last_sample() == Some(sample.time) {
            // Another run took this second's sample (a timer and a manual run): the gateway keys
            // samples by second, so take this one in the next second rather than lose it.
            let into_second = u64::from(Utc::now().timestamp_subsec_millis());
            tokio::time::sleep(Duration::from_millis(1000 - into_second.min(999))).await;
            sample = sampler.sample();
        }
        return match collect(&spool, &pusher, &Stats::default(), sample).await {
            Ok(Pushed::All) => ExitCode::SUCCESS,
            Ok(Pushed::Spooled(why)) => {
                eprintln!("hub-collector: push failed, the sample waits in the spool: {why}");
                ExitCode::from(EX_TEMPFAIL)
            }
            Err(e) => fail(&e),
        };
    }

    let spool = Arc::new(spool);
    let stats = Arc::new(Stats::default());
    if let Some(addr) = cli.metrics_addr {
        // Bound before the first sample: a taken port is a start-up error, not a silent gap.
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => return fail(&format!("cannot listen on {addr} for /metrics: {e}")),
        };
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(addr = %bound, "serving /metrics");
        tokio::spawn(stats::serve(listener, stats.clone(), spool.clone()));
    }
    tracing::info!(gateway = %cli.gateway_url, interval = cli.interval, spool = %cli.spool_dir.display(), "hub-collector started");
    sampler.prime();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot listen for SIGTERM: {e}")),
    };
    loop {
        let wait = until_next_tick(cli.interval, cli.jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        let sample = sampler.sample();
        if let Err(e) = collect(&spool, &pusher, &stats, sample).await {
            stats.lost();
            tracing::error!(error = %e, "sample lost");
        }
    }
    tracing::info!("hub-collector stopped");
    ExitCode::SUCCESS
}

/// Whether a spooled sample reached the gateway.
enum Pushed {
    All,
    /// The push failed; the sample stays in the spool for the next attempt.
    Spooled(String),
}

/// Spools the sample, then pushes everything spooled. Only a spool failure loses the sample.
async fn collect(
    spool: &Spool,
    pusher: &Pusher,
    stats: &Stats,
    sample: Sample,
) -> Result<Pushed, String> {
    stats.sampled(sample.time.timestamp());
    spool
        .append(&sample)
        .map_err(|e| format!("cannot spool sample: {e}"))?;
    match pusher.flush(spool).await {
        Ok(done) => {
            stats.flushed(done.pushed, done.rejected, Utc::now().timestamp());
            tracing::info!(pushed = done.pushed, rejected = done.rejected, "pushed");
            Ok(Pushed::All)
        }
        Err(e) => {
            stats.push_failed();
            let pending = spool.pending().map(|p| p.len()).unwrap_or(0);
            tracing::warn!(error = %e, pending, "push failed; samples stay spooled");
            Ok(Pushed::Spooled(e.to_string()))
        }
    }
}

/// Time until the next multiple of `interval` (plus jitter), on the wall clock.
fn until_next_tick(interval: u64, jitter: u64) -> Duration {
    let now_ms = Utc::now().timestamp_millis().max(0) as u64;
    let period = interval * 1000;
    let next = (now_ms / period + 1) * period;
    let jitter_ms = if jitter == 0 {
        0
    } else {
        rand::rng().random_range(0..jitter * 1000)
    };
    Duration::from_millis(next - now_ms + jitter_ms)
}
