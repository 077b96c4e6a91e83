//! Handles to each `(route, status)` series of `hub_http_requests_total`, made on a route's
//! first request with that status and reused after: counting a request then takes a map
//! lookup by the route text and an atomic add, where building the label set each time took
//! five allocations (labels and OTLP attributes), on every request, `/healthz` included.

use super::{HttpLabels, otel::kv};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

#[derive(Debug)]
struct Series {
    counter: Counter,
    attributes: [opentelemetry::KeyValue; 2],
}

/// route → status → series. Both are bounded: routes by the router's table (and `unmatched`),
/// statuses by HTTP.
#[derive(Debug, Default)]
pub(super) struct HttpSeries {
    known: RwLock<HashMap<String, HashMap<u16, Series>>>,
}

impl HttpSeries {
    /// Adds one to the series of `(route, status)` in `family` and on `otel`.
    pub(super) fn count(
        &self,
        family: &Family<HttpLabels, Counter>,
        otel: &opentelemetry::metrics::Counter<u64>,
        route: &str,
        status: u16,
    ) {
        let add = |s: &Series| {
            s.counter.inc();
            otel.add(1, &s.attributes);
        };
        {
            let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = known
                .get(route)
                .and_then(|by_status| by_status.get(&status))
            {
                add(s);
                return;
            }
        }
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        let series = known
            .entry(route.to_owned())
            .or_default()
            .entry(status)
            .or_insert_with(|| {
                let status = status.to_string();
                let counter = family
                    .get_or_create(&HttpLabels {
                        route: route.to_owned(),
                        status: status.clone(),
                    })
                    .clone();
                Series {
                    counter,
                    attributes: [kv("route", route), kv("status", &status)],
                }
            });
        add(series);
    }
}
