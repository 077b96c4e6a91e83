//! The harness's results: one JSON object per line, appended by every step of `make bench`.
//!
//! A measurement: `{"metric": "webhook_rps", "series": "hub-gateway", "x": 16, "value": 41234.5}`
//! (`x` is the swept variable — connections, batch size, seconds — and may be left out). One
//! line per run: the report takes medians and spreads over the runs. Facts about the machine
//! and the tools: `{"info": "kernel", "value": "6.1.0"}`.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Record {
    Measure {
        metric: String,
        series: String,
        #[serde(default)]
        x: Option<f64>,
        value: f64,
    },
    Info {
        info: String,
        value: serde_json::Value,
    },
}

/// Which measurements a figure is made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key<'a> {
    pub metric: &'a str,
    pub series: &'a str,
    pub x: Option<f64>,
}

/// Median and spread of one key's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }

    /// Half the range as a share of the median: how far runs strayed.
    pub fn spread(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / 2.0 / self.median.abs()
        }
    }
}

/// Everything one harness run recorded.
#[derive(Debug, Default)]
pub struct Results {
    measures: Vec<(String, String, Option<f64>, f64)>,
    pub info: BTreeMap<String, String>,
}

impl Results {
    /// Parses the JSON lines; a line that is not a record is an error naming its number.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record: Record =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}: {line}", i + 1))?;
            match record {
                Record::Measure {
                    metric,
                    series,
                    x,
                    value,
                } => out.measures.push((metric, series, x, value)),
                Record::Info { info, value } => {
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.info.insert(info, text);
                }
            }
        }
        Ok(out)
    }

    fn values(&self, key: Key<'_>) -> Vec<f64> {
        self.measures
            .iter()
            .filter(|(m, s, x, _)| m == key.metric && s == key.series && *x == key.x)
            .map(|(_, _, _, v)| *v)
            .collect()
    }

    pub fn stat(&self, key: Key<'_>) -> Option<Stat> {
        Stat::of(&self.values(key))
    }

    /// The series recorded for `metric`, in first-seen order.
    pub fn series(&self, metric: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (m, s, _, _) in &self.measures {
            if m == metric && !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// Each series' median of `metric` measured without an `x`, in first-seen order.
    pub fn levels(&self, metric: &str) -> Vec<(String, f64)> {
        self.series(metric)
            .into_iter()
            .filter_map(|series| {
                let key = Key {
                    metric,
                    series: &series,
                    x: None,
                };
                self.stat(key).map(|s| (series.clone(), s.median))
            })
            .collect()
    }

    /// Median per `x` of one series, ordered by `x`.
    pub fn curve(&self, metric: &str, series: &str) -> Vec<(f64, f64)> {
        let mut xs: Vec<f64> = self
            .measures
            .iter()
            .filter(|(m, s, _, _)| m == metric && s == series)
            .filter_map(|(_, _, x, _)| *x)
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        xs.into_iter()
            .filter_map(|x| {
                let key = Key {
                    metric,
                    series,
                    x: Some(x),
                };
                self.stat(key).map(|s| (x, s.median))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_spreads_and_curves_come_from_the_runs() {
        let text = r#"
{"info": "cores", "value": 2}
{"metric": "rps", "series": "hub", "x": 16, "value": 10}
{"metric": "rps", "series": "hub", "x": 16, "value": 30}
{"metric": "rps", "series": "hub", "x": 16, "value": 20}
{"metric": "rps", "series": "hub", "x": 1, "value": 5}
{"metric": "rps", "series": "peer", "x": 16, "value": 4}
{"metric": "size", "series": "hub", "value": 7}
"#;
        let r = Results::parse(text).expect("parse");
        let hub = r
            .stat(Key {
                metric: "rps",
                series: "hub",
                x: Some(16.0),
            })
            .expect("hub");
        assert_eq!(
            (hub.median, hub.min, hub.max, hub.runs),
            (20.0, 10.0, 30.0, 3)
        );
        assert_eq!(hub.spread(), 0.5);
        assert_eq!(r.curve("rps", "hub"), [(1.0, 5.0), (16.0, 20.0)]);
        assert_eq!(r.series("rps"), ["hub", "peer"]);
        let size = Key {
            metric: "size",
            series: "hub",
            x: None,
        };
        assert_eq!(r.stat(size).map(|s| s.median), Some(7.0));
        assert_eq!(r.info["cores"], "2");
        assert_eq!(
            Stat::of(&[1.0, 2.0, 3.0, 10.0]).map(|s| s.median),
            Some(2.5)
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = Results::parse("{\"metric\": \"rps\"}\n").expect_err("incomplete");
        assert!(err.starts_with("line 1:"), "{err}");
    }
}
