//! JSON logs, one object a line, which journald and Loki's promtail take as they are.
//! `RUST_LOG` sets the filter (default `info`). `hub-runtime`'s telemetry adds OTLP traces on
//! top of the same layer; processes without traces call [`init`].

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log lines go: stdout for services (journald), stderr for commands that print their
/// result on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    Stdout,
    Stderr,
}

/// `RUST_LOG`, or `info`.
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The JSON formatting layer.
pub fn json_layer<S>(output: LogOutput) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(move || -> Box<dyn std::io::Write> {
            match output {
                LogOutput::Stdout => Box::new(std::io::stdout()),
                LogOutput::Stderr => Box::new(std::io::stderr()),
            }
        })
}

/// Installs JSON logs as the global subscriber (a second call keeps the first).
pub fn init(output: LogOutput) {
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(json_layer(output))
        .try_init();
}
