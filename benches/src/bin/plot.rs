//! `plot`: a line chart as SVG from a JSON file of series, for the benchmark scripts (which
//! use Python's standard library only and hand their figures here).
//!
//! ```text
//! plot --out chart.svg --title T --x-desc X --y-desc Y [--log-x] [--log-y] series.json
//! ```
//!
//! `series.json` is `[{"name": "…", "points": [[x, y], …]}, …]`; a point whose y is null is
//! left out (a figure a run did not reach).

use std::path::PathBuf;

use clap::Parser;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Parser, Debug)]
struct Args {
    /// Where to write the SVG.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "")]
    title: String,
    /// What the x axis shows.
    #[arg(long, default_value = "")]
    x_desc: String,
    /// What the y axis shows.
    #[arg(long, default_value = "")]
    y_desc: String,
    /// Logarithmic x axis (values must be positive).
    #[arg(long)]
    log_x: bool,
    /// Logarithmic y axis (values must be positive).
    #[arg(long)]
    log_y: bool,
    /// The series, as JSON.
    series: PathBuf,
}

type Series = Vec<(String, Vec<(f64, f64)>)>;

fn read_series(path: &PathBuf) -> Result<Series, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text)?;
    let bad = || {
        format!(
            "{}: expected [{{\"name\": …, \"points\": [[x, y], …]}}, …]",
            path.display()
        )
    };
    let mut out = Vec::new();
    for s in v.as_array().ok_or_else(bad)? {
        let name = s["name"].as_str().ok_or_else(bad)?.to_string();
        let points = s["points"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
            .collect();
        out.push((name, points));
    }
    Ok(out)
}

/// An axis's span over every point, a little wider; on a log axis, in log10 units.
fn span(values: impl Iterator<Item = f64>, log: bool) -> Result<(f64, f64), String> {
    let v: Vec<f64> = values.collect();
    if log && v.iter().any(|x| *x <= 0.0) {
        return Err("a logarithmic axis needs positive values".into());
    }
    let v: Vec<f64> = v
        .into_iter()
        .map(|x| if log { x.log10() } else { x })
        .collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return Err("no points to plot".into());
    }
    let pad = ((hi - lo) * 0.05).max(if log { 0.1 } else { hi.abs() * 0.05 + 1e-9 });
    let lo = if !log && lo >= 0.0 { 0.0 } else { lo - pad };
    Ok((lo, hi + pad))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let series = read_series(&args.series)?;
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1) = span(all().map(|p| p.0), args.log_x)?;
    let (y0, y1) = span(all().map(|p| p.1), args.log_y)?;
    let scale = |v: f64, log: bool| if log { v.log10() } else { v };
    // Log axes are drawn in log10 units and labelled with the values.
    let label = |log: bool| {
        move |v: &f64| {
            let x = if log { 10f64.powf(*v) } else { *v };
            if x.abs() >= 100.0 || x == x.round() {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        }
    };
    let root = SVGBackend::new(&args.out, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&args.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(65)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    // On a log axis, one label per decade (plotters would otherwise pick 10^0.2 steps).
    let labels = |lo: f64, hi: f64, log: bool| {
        if log {
            (hi.floor() - lo.ceil()) as usize + 1
        } else {
            10
        }
    };
    chart
        .configure_mesh()
        .x_labels(labels(x0, x1, args.log_x))
        .y_labels(labels(y0, y1, args.log_y))
        .x_desc(&args.x_desc)
        .y_desc(&args.y_desc)
        .x_label_formatter(&label(args.log_x))
        .y_label_formatter(&label(args.log_y))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = points
            .iter()
            .map(|&(x, y)| (scale(x, args.log_x), scale(y, args.log_y)))
            .collect();
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
