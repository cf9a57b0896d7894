//! The capacity chart: for each target, delivery p99 latency (ms, log scale; the median
//! of a step's repeats) against offered messages/s at each step of a `capacity` run, with
//! the 100 ms pass line. Plain SVG text: one chart, no plotting dependency.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 3] = ["#1f77b4", "#2ca02c", "#d62728"];

/// Reads a `capacity` JSON document from `input` and writes the chart to `out`.
pub fn capacity_chart(input: &Path, out: &Path) -> anyhow::Result<()> {
    let doc: Value = serde_json::from_slice(
        &std::fs::read(input).with_context(|| format!("reading {}", input.display()))?,
    )?;
    let results = doc["results"]
        .as_object()
        .context("no results in the document")?;
    // (target, capacity, [(offered, p99, passed)])
    let mut series = Vec::new();
    for (name, r) in results {
        let steps = r["steps"].as_array().context("no steps")?;
        let points: Vec<(f64, f64, bool)> = steps
            .iter()
            .map(|s| {
                (
                    s["offered_per_sec"].as_f64().unwrap_or(0.0),
                    // The median of the repeats; a step of an older document (one
                    // measurement) has its `result` instead.
                    s["median"]["p99_ms"]
                        .as_f64()
                        .or_else(|| s["result"]["latency"]["p99_ms"].as_f64())
                        .unwrap_or(0.0)
                        .max(0.1),
                    s["passed"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        series.push((
            name.clone(),
            r["capacity_per_sec"].as_f64().unwrap_or(0.0),
            points,
        ));
    }
    let all = series.iter().flat_map(|s| s.2.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all.map(|p| p.1).fold(100.0, f64::max) * 1.5;
    let (y_lo, y_hi) = (0.1f64.log10(), y_max.log10());
    let (x_lo, x_hi) = (1.0f64.log10().max(0.0), x_max.log10() * 1.05);
    let px = |x: f64| LEFT + (x.max(1.0).log10() - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y.max(0.1).log10() - y_lo) / (y_hi - y_lo) * (H - TOP - BOTTOM);
    let mut svg = String::new();
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    )?;
    writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#)?;
    // Provenance holds the machine; older documents have it at the top.
    let machine = match &doc["provenance"]["machine"] {
        Value::Null => &doc["machine"],
        m => m,
    };
    writeln!(
        svg,
        r#"<text x="{LEFT}" y="22" font-size="14">fanout capacity: p99 delivery latency vs offered messages/s ({} members, {} CPUs)</text>"#,
        doc["params"]["fanout"]["members"]
            .as_u64()
            .or(doc["params"]["members"].as_u64())
            .unwrap_or(0),
        machine["cpus"].as_u64().unwrap_or(0)
    )?;
    // Axes and grid (decades).
    let mut d = 1.0;
    while d <= x_max * 1.05 {
        let x = px(d);
        writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            H - BOTTOM
        )?;
        writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{d}</text>"#,
            H - BOTTOM + 16.0
        )?;
        d *= 10.0;
    }
    let mut d = 0.1;
    while d <= y_max {
        let y = py(d);
        writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            W - RIGHT
        )?;
        writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{d}</text>"#,
            LEFT - 6.0,
            y + 4.0
        )?;
        d *= 10.0;
    }
    writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">offered messages/s (log)</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 20.0
    )?;
    writeln!(
        svg,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">p99 latency, ms (log)</text>"#,
        (TOP + H - BOTTOM) / 2.0
    )?;
    let limit = py(super::scenarios::capacity::MAX_P99_MS);
    writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{limit:.1}" x2="{:.1}" y2="{limit:.1}" stroke="#999" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#666">100 ms</text>"##,
        W - RIGHT,
        W - RIGHT + 4.0,
        limit + 4.0
    )?;
    for (i, (name, capacity, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(x, y, _)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        )?;
        for (x, y, passed) in points {
            let fill = if *passed { colour } else { "white" };
            writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{colour}" stroke-width="2"/>"#,
                px(*x),
                py(*y)
            )?;
        }
        let ly = TOP + 20.0 + i as f64 * 40.0;
        writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{:.1}">{name}</text><text x="{:.1}" y="{:.1}" fill="#444">capacity {capacity:.0} msg/s</text>"##,
            W - RIGHT + 16.0,
            ly - 10.0,
            W - RIGHT + 34.0,
            ly,
            W - RIGHT + 34.0,
            ly + 15.0
        )?;
    }
    writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.1}" fill="#666">filled: step passed (ratio ≥ 0.99, p99 ≤ 100 ms); hollow: first failing step</text>"##,
        H - 4.0
    )?;
    svg.push_str("</svg>\n");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, svg)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
