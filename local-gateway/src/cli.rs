//! Command line of `hub-gateway`.

use crate::app::FUNCTIONS;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

/// The gateway's own settings; each function's follow, from its registration.
const GATEWAY_HELP: &str = "\
Environment (hub.toml keys in brackets; the environment wins):
  HUB_BIND                    operator listener's address: every route [gateway.bind] (default 127.0.0.1);
                              beyond loopback it needs HUB_OPERATOR_TOKEN or HUB_OPERATOR_ANONYMOUS=true
  PORT                        operator listener's port [gateway.port] (default 8085)
  HUB_PUBLIC_BIND             public listener's address: the public routes alone, the one Tailscale Funnel
                              points at [gateway.public_bind] (default 127.0.0.1)
  HUB_PUBLIC_PORT             public listener's port; 0 picks a free one [gateway.public_port] (default 8086)
  HUB_OPERATOR_TOKEN(_FILE)   required on operator routes when set: Authorization: Bearer TOKEN, or HTTP
                              Basic with any user and TOKEN as password; /healthz, /readyz stay open
                              [gateway.operator_token]
  HUB_OPERATOR_ANONYMOUS      true: serve operator routes without a token on a non-loopback HUB_BIND, on
                              purpose [gateway.operator_anonymous] (default false)
  HUB_CONFIG                  config file (default ./hub.toml when it exists)
  HUB_DATA_DIR                local state, incl. the embedded store hub.db [hub.data_dir] (default ./var)
  DATABASE_URL(_FILE)         postgres://… to use PostgreSQL instead of the embedded SQLite store
                              (sqlite:///path for an SQLite file elsewhere)
  DB_HOST, DB_PORT, DB_USER,  the old hub's PostgreSQL settings, used when DATABASE_URL is unset and
  DB_NAME, DB_SSLMODE,        DB_HOST is set (defaults 30432, server, homelab, disable)
  SERVER_DB_PASSWORD(_FILE)
  BAO_ADDR, BAO_TOKEN(_FILE)  read secrets from OpenBao KV v2 at start (mount BAO_KV_MOUNT, default
                              secret; path BAO_KV_PATH, default observability-hub): postgres, mongo,
                              webhook, collector. Set variables win; unreachable stops start-up
  BAO_CACERT                  PEM file of the CA that signed OpenBao's certificate
  HUB_REQUEST_TIMEOUT_SECS    bound on one HTTP request [hub.request_timeout_secs] (default 30)
  HUB_MAX_BODY_BYTES          largest request body; 413 beyond it [hub.max_body_bytes] (default 5242880)
  HUB_MAX_CONCURRENCY         requests one function serves at once; 429 beyond it (default 64)
  HUB_BODY_TIMEOUT_SECS       how long a request body may take to arrive; 408 after (default 10)
  HUB_SHUTDOWN_GRACE_SECS     shutdown ends within it: running work gets it less a quarter (at most 5 s),
                              then is interrupted and records how far it got (default 30)
  HUB_HEADER_TIMEOUT_SECS     deadline for a request's headers; also closes idle keep-alive connections
                              [gateway.header_timeout_secs] (default 10)
  HUB_MAX_CONNECTIONS         open connections served at once per listener; beyond it 503 at once
                              [gateway.max_connections] (default 1024, within the open-files limit)
  HUB_STORE_BATCH_WINDOW_MS   how long run rows wait to share a transaction with other writes; a
                              write someone awaits (a webhook's replay key) never waits (default 2)
  HUB_STORE_BATCH_MAX         most writes committed in one transaction (default 512)
  HUB_STORE_QUEUE             writes waiting for the store before requests wait for room (default 8192)
  HUB_RUN_RETENTION_DAYS      days of run history kept; 0 keeps everything (default 30)
  HUB_PRUNE_INTERVAL_SECS     how often old run history is pruned (default 3600)
  HUB_SCHEDULE_<NAME>         cron schedule of a function, seconds first, e.g.
                              HUB_SCHEDULE_READING_SYNC=\"0 0 0,12 * * *\"; \"off\" disables [schedule.<name>]
  HUB_JITTER_<NAME>           random delay of each scheduled run, 0..N seconds [jitter.<name>]
  HUB_CATCHUP_DELAY_SECS      pause before the catch-up run of a tick missed while down (default 5)
  OTEL_EXPORTER_OTLP_ENDPOINT send traces and the hub's metrics over OTLP; unset: none. A host:port
                              (localhost:30317) is gRPC, a URL (http://127.0.0.1:4318) HTTP/protobuf
  OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf, overriding what the endpoint suggests
  OTEL_SERVICE_NAME           service.name of traces and metrics (default hub-gateway)
  OTEL_METRIC_EXPORT_INTERVAL milliseconds between metric exports (default 60000)
  RUST_LOG                    log filter (default info); logs are JSON lines on stdout";

const SECRETS_HELP: &str =
    "Any secret can be given as NAME_FILE=/path instead (systemd credentials, Kubernetes secrets).";

/// `--help`'s environment section: the gateway's settings, then every function's.
pub fn environment_help() -> String {
    let mut text = GATEWAY_HELP.to_owned();
    for f in FUNCTIONS {
        text.push_str("\n\n");
        text.push_str(f.env_help);
    }
    text.push_str("\n\n");
    text.push_str(SECRETS_HELP);
    text
}

impl Cli {
    /// Parses the command line, with the environment help built from the function list.
    pub fn parse_args() -> Self {
        let matches = Self::command()
            .after_long_help(environment_help())
            .get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }
}

/// Observability Hub gateway: serves the hub's functions over HTTP on this host, runs them from
/// the command line, and records every invocation as a run.
#[derive(Debug, Parser)]
#[command(
    name = "hub-gateway",
    version,
    after_help = "See --help for the environment variables."
)]
pub struct Cli {
    /// Config file (TOML); overrides HUB_CONFIG.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every function over HTTP (the default when no command is given).
    Serve {
        /// Operator listener's address; overrides HUB_BIND.
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
        /// Operator listener's port (0 picks a free one); overrides PORT.
        #[arg(long)]
        port: Option<u16>,
        /// Public listener's address; overrides HUB_PUBLIC_BIND.
        #[arg(long)]
        public_bind: Option<std::net::IpAddr>,
        /// Public listener's port (0 picks a free one); overrides HUB_PUBLIC_PORT.
        #[arg(long)]
        public_port: Option<u16>,
    },
    /// Run one function once, record it as a run (trigger "cli") and print the outcome as JSON.
    /// Exits 0 on success or skip, 1 if the function failed, 2 on bad usage.
    Invoke {
        /// Function name, as listed by `hub-gateway functions`.
        name: String,
        /// JSON object given to the function, e.g. '{"repository":"infra"}' for webhook-gitops;
        /// `@FILE` reads it from a file, `-` from stdin.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        data: String,
    },
    /// List the functions with their routes, schedule and whether they are configured.
    Functions,
    /// minio-backup's backups: take one, list, verify and restore what is stored.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// The public page: a static site from page/*.yaml and the run history.
    Page {
        #[command(subcommand)]
        action: PageAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum PageAction {
    /// Render the public page into DIR (index.html, evolution.html, style.css; other files in
    /// DIR are left alone): the landing section and timeline from CONTENT/landing.yaml and
    /// CONTENT/evolution.yaml (schema: docs/page.md), and each function's last outcome and
    /// 30-day success rate — nothing else from the store. Static HTML and CSS, no JavaScript,
    /// nothing loaded from elsewhere. A bad file is named with its line and key (exit 2).
    Build {
        /// Where to write the site (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Directory holding landing.yaml and evolution.yaml.
        #[arg(long, value_name = "DIR", default_value = "page")]
        content: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Back up SET (or every set) now, recorded as a run (trigger "cli"): each set streamed to
    /// the target, checked and kept under the retention policy. Progress on a terminal; the
    /// outcome as JSON on stdout. Exits 0 when every set succeeded, 1 otherwise.
    Run { set: Option<String> },
    /// Restore drill: restore the newest good backup of the database set SET (or of each) into
    /// a scratch database, count every table's rows, drop it; recorded as a run. Exits 1 if a
    /// drill fails.
    Drill { set: Option<String> },
    /// Good backups (those with a manifest) of SET, or of every set, newest first, as JSON.
    List { set: Option<String> },
    /// Re-read every good backup of SET (or of every set) and compare its size and SHA-256 with
    /// its manifest. Names each that does not match and exits 1 if any.
    Verify { set: Option<String> },
    /// Restore the newest good backup of SET (or the newest started at or before --at), after
    /// checking its SHA-256: a pg_dump into a new database (pg_restore), a directory or the
    /// embedded store into a new or empty directory.
    Restore {
        set: String,
        /// RFC 3339 time, e.g. 2026-12-01T12:00:00Z.
        #[arg(long)]
        at: Option<String>,
        /// Database to create and restore into (must not exist).
        #[arg(
            long,
            value_name = "NAME",
            conflicts_with = "to_dir",
            required_unless_present = "to_dir"
        )]
        to_database: Option<String>,
        /// Directory to restore into (must not exist or be empty).
        #[arg(long, value_name = "PATH")]
        to_dir: Option<PathBuf>,
    },
}
