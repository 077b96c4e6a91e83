//! JSON logs, one object a line, which journald and Loki's promtail take as they are.
//! `RUST_LOG` sets the filter (default `info`). `hub-runtime`'s telemetry adds OTLP traces on
//! top of the same layer; processes without traces call [`init`].

mod fields;

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
        .fmt_fields(fields::DirectJsonFields)
        .with_writer(move || Redacting {
            output,
            line: Vec::new(),
        })
}

/// Collects one formatted event and writes it, secrets redacted, when the formatter is done
/// with it (the fmt layer makes one writer per event).
struct Redacting {
    output: LogOutput,
    line: Vec<u8>,
}

impl std::io::Write for Redacting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.line);
        let clean = crate::redact::redact(&text);
        let result = match self.output {
            LogOutput::Stdout => std::io::stdout().lock().write_all(clean.as_bytes()),
            LogOutput::Stderr => std::io::stderr().lock().write_all(clean.as_bytes()),
        };
        self.line.clear();
        result
    }
}

impl Drop for Redacting {
    fn drop(&mut self) {
        // Logging has nowhere to report its own failure.
        let _ = std::io::Write::flush(self);
    }
}

/// Installs JSON logs as the global subscriber (a second call keeps the first).
pub fn init(output: LogOutput) {
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(json_layer(output))
        .try_init();
}
