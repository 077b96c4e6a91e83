//! The SVG plots beside BENCHMARKS.md, drawn with plotters from the results' medians.

use crate::results::Results;
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::error::Error;
use std::path::{Path, PathBuf};

type Drawn = Result<(), Box<dyn Error>>;

const SIZE: (u32, u32) = (820, 460);
const PALETTE: [RGBColor; 6] = [
    RGBColor(9, 105, 218),
    RGBColor(207, 34, 46),
    RGBColor(130, 80, 223),
    RGBColor(26, 127, 55),
    RGBColor(154, 103, 0),
    RGBColor(89, 99, 110),
];

/// A plot of one or more metrics' series against their `x`.
#[derive(Debug)]
struct Lines {
    file: &'static str,
    title: &'static str,
    x_desc: &'static str,
    y_desc: &'static str,
    /// (metric, label suffix): every series of each metric is a curve.
    metrics: &'static [(&'static str, &'static str)],
    log_x: bool,
}

/// Bars: each series' median of one metric (its `x` unset).
#[derive(Debug)]
struct Bars {
    file: &'static str,
    title: &'static str,
    y_desc: &'static str,
    metric: &'static str,
}

const LINES: &[Lines] = &[
    Lines {
        file: "webhook-rps.svg",
        title: "Signed webhook deliveries/s vs connections",
        x_desc: "connections (wrk)",
        y_desc: "requests/s",
        metrics: &[("webhook_rps", "")],
        log_x: true,
    },
    Lines {
        file: "webhook-latency.svg",
        title: "Signed webhook latency vs connections",
        x_desc: "connections (wrk)",
        y_desc: "latency, ms",
        metrics: &[("webhook_p50_ms", " p50"), ("webhook_p99_ms", " p99")],
        log_x: true,
    },
    Lines {
        file: "ingest.svg",
        title: "Metrics ingest rows/s vs samples per request (1 connection)",
        x_desc: "samples per request",
        y_desc: "rows/s",
        metrics: &[("ingest_rows_per_s", "")],
        log_x: true,
    },
    Lines {
        file: "backup-rss.svg",
        title: "Backup upload: resident memory over time",
        x_desc: "seconds",
        y_desc: "RSS, MiB",
        metrics: &[("backup_rss_mib", "")],
        log_x: false,
    },
    Lines {
        file: "soak-rss.svg",
        title: "Gateway resident memory under mixed load",
        x_desc: "seconds",
        y_desc: "RSS, MiB",
        metrics: &[("soak_rss_mib", "")],
        log_x: false,
    },
];

const BARS: &[Bars] = &[
    Bars {
        file: "collector-cpu.svg",
        title: "CPU per sample (ms): hub-collector vs node_exporter per scrape",
        y_desc: "CPU ms",
        metric: "collector_cpu_ms",
    },
    Bars {
        file: "reading-sync.svg",
        title: "reading-sync documents/s vs the seed's loop",
        y_desc: "documents/s",
        metric: "sync_docs_per_s",
    },
    Bars {
        file: "backup-throughput.svg",
        title: "Backup upload MB/s from a pipe to Garage",
        y_desc: "MB/s",
        metric: "backup_mb_per_s",
    },
];

/// Draws every plot the results have data for into `dir`; returns the files written.
pub fn draw_all(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for plot in LINES {
        let curves: Vec<(String, Vec<(f64, f64)>)> = plot
            .metrics
            .iter()
            .flat_map(|(metric, suffix)| {
                results.series(metric).into_iter().map(move |series| {
                    (format!("{series}{suffix}"), results.curve(metric, &series))
                })
            })
            .filter(|(_, points)| !points.is_empty())
            .collect();
        // A series measured without an x (COPY beside the ingest curve) is a level line.
        let levels: Vec<(String, f64)> = plot
            .metrics
            .iter()
            .flat_map(|(metric, _)| results.levels(metric))
            .collect();
        if curves.is_empty() {
            continue;
        }
        let path = dir.join(plot.file);
        lines(&path, plot, &curves, &levels)?;
        written.push(path);
    }
    for plot in BARS {
        let bars = results.levels(plot.metric);
        if bars.is_empty() {
            continue;
        }
        let path = dir.join(plot.file);
        bar_chart(&path, plot, &bars)?;
        written.push(path);
    }
    Ok(written)
}

fn lines(
    path: &Path,
    plot: &Lines,
    curves: &[(String, Vec<(f64, f64)>)],
    levels: &[(String, f64)],
) -> Drawn {
    let points = curves.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0_f64);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    for (_, level) in levels {
        y1 = y1.max(*level);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y_range = 0.0..y1 * 1.1 + f64::EPSILON;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(plot.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(80);
    if plot.log_x {
        let mut chart = builder.build_cartesian_2d((x0..x1).log_scale(), y_range)?;
        chart
            .configure_mesh()
            .x_desc(plot.x_desc)
            .y_desc(plot.y_desc)
            .draw()?;
        draw_curves(&mut chart, curves, levels, x0, x1)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    } else {
        let mut chart = builder.build_cartesian_2d(x0..x1, y_range)?;
        chart
            .configure_mesh()
            .x_desc(plot.x_desc)
            .y_desc(plot.y_desc)
            .draw()?;
        draw_curves(&mut chart, curves, levels, x0, x1)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn draw_curves<'a, X>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, RangedCoordf64>>,
    curves: &[(String, Vec<(f64, f64)>)],
    levels: &[(String, f64)],
    x0: f64,
    x1: f64,
) -> Drawn
where
    X: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in curves.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart.draw_series(
            points
                .iter()
                .map(move |&(x, y)| Circle::new((x, y), 3, colour.filled())),
        )?;
    }
    for (j, (name, level)) in levels.iter().enumerate() {
        let colour = PALETTE[(curves.len() + j) % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                [(x0, *level), (x1, *level)],
                colour.stroke_width(1),
            ))?
            .label(format!("{name} (flat)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
    }
    Ok(())
}

fn bar_chart(path: &Path, plot: &Bars, bars: &[(String, f64)]) -> Drawn {
    let top = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max) * 1.15 + f64::EPSILON;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(plot.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d((0..bars.len()).into_segmented(), 0.0..top)?;
    let names: Vec<&str> = bars.iter().map(|(n, _)| n.as_str()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(plot.y_desc)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).map_or(String::new(), |n| (*n).to_owned()),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        let colour = PALETTE[i % PALETTE.len()];
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            colour.mix(0.8).filled(),
        );
        bar.set_margin(0, 0, 30, 30);
        bar
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_drawn_for_what_was_measured() {
        let results = Results::parse(
            r#"{"metric": "webhook_rps", "series": "hub", "x": 1, "value": 9000}
{"metric": "webhook_rps", "series": "hub", "x": 16, "value": 40000}
{"metric": "webhook_rps", "series": "webhook", "x": 1, "value": 3000}
{"metric": "webhook_rps", "series": "webhook", "x": 16, "value": 7000}
{"metric": "ingest_rows_per_s", "series": "hub", "x": 500, "value": 90000}
{"metric": "ingest_rows_per_s", "series": "hub", "x": 2000, "value": 110000}
{"metric": "ingest_rows_per_s", "series": "copy", "value": 120000}
{"metric": "collector_cpu_ms", "series": "hub", "value": 3.1}
{"metric": "collector_cpu_ms", "series": "node_exporter", "value": 12.5}"#,
        )
        .expect("results");
        let dir = std::env::temp_dir().join(format!("hub-bench-plots-{}", std::process::id()));
        let written = draw_all(&results, &dir).expect("draw");
        let names: Vec<String> = written
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names,
            ["webhook-rps.svg", "ingest.svg", "collector-cpu.svg"]
        );
        let svg = std::fs::read_to_string(dir.join("webhook-rps.svg")).expect("svg");
        assert!(
            svg.starts_with("<svg") && svg.contains("webhook"),
            "legend names the peer"
        );
        let ingest = std::fs::read_to_string(dir.join("ingest.svg")).expect("svg");
        assert!(ingest.contains("copy (flat)"), "COPY is a level line");
        let bars = std::fs::read_to_string(dir.join("collector-cpu.svg")).expect("svg");
        assert!(bars.contains("node_exporter"), "bars are labelled");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
