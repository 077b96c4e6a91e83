//! Handles to each function's run series — runs by outcome, duration, in flight, last success —
//! and their OTLP attributes, made when the function is registered (or first runs) and reused:
//! recording a run then takes a map lookup by the function's name and atomic adds, where
//! building the label sets took about ten allocations per run.

use super::{FunctionLabels, HistogramFamily, OUTCOMES, RunLabels, otel::kv};
use opentelemetry::KeyValue;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock};

/// The families the series live in.
pub(super) struct Families<'a> {
    pub(super) runs: &'a Family<RunLabels, Counter>,
    pub(super) duration: &'a HistogramFamily,
    pub(super) in_flight: &'a Family<FunctionLabels, Gauge>,
    pub(super) last_success: &'a Family<FunctionLabels, Gauge<f64, AtomicU64>>,
}

#[derive(Debug)]
pub(super) struct Series {
    /// By the index of the outcome in [`OUTCOMES`].
    runs: [(Counter, [KeyValue; 2]); OUTCOMES.len()],
    pub(super) duration: Histogram,
    pub(super) in_flight: Gauge,
    pub(super) last_success: Gauge<f64, AtomicU64>,
    /// `function=<name>`, for the OTLP instruments.
    pub(super) attributes: Arc<[KeyValue]>,
}

impl Series {
    fn new(f: &Families<'_>, function: &str) -> Self {
        let labels = FunctionLabels {
            function: function.to_owned(),
        };
        let runs = OUTCOMES.map(|outcome| {
            let counter = f
                .runs
                .get_or_create(&RunLabels {
                    function: function.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .clone();
            (counter, [kv("function", function), kv("outcome", outcome)])
        });
        Series {
            runs,
            duration: f.duration.get_or_create(&labels).clone(),
            in_flight: f.in_flight.get_or_create(&labels).clone(),
            last_success: f.last_success.get_or_create(&labels).clone(),
            attributes: Arc::from([kv("function", function)]),
        }
    }

    /// The counter of runs that ended with `outcome` and its OTLP attributes.
    pub(super) fn runs(&self, outcome: &str) -> Option<&(Counter, [KeyValue; 2])> {
        let at = OUTCOMES.iter().position(|o| *o == outcome)?;
        self.runs.get(at)
    }
}

/// function → series; bounded by the functions the process runs.
#[derive(Debug, Default)]
pub(super) struct FunctionSeries {
    known: RwLock<HashMap<String, Arc<Series>>>,
}

impl FunctionSeries {
    /// `function`'s series, made (at 0) on first use.
    pub(super) fn get(&self, families: &Families<'_>, function: &str) -> Arc<Series> {
        if let Some(s) = self
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(function)
        {
            return s.clone();
        }
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        known
            .entry(function.to_owned())
            .or_insert_with(|| Arc::new(Series::new(families, function)))
            .clone()
    }
}
