//! `simulate --plot`: the run's detection latency as an SVG chart (the cumulative share of
//! survivor views that had declared a crashed member dead, by seconds after the crash).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use swim_core::sim::Report;

/// At most this many steps per curve: a million views would make a 50 MB SVG.
const STEPS: usize = 500;

/// The empirical CDF of `values` as a staircase of at most [`STEPS`] steps.
fn cdf(mut values: Vec<f64>) -> Vec<(f64, f64)> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let mut points = vec![(0.0, 0.0)];
    for step in 1..=STEPS.min(n) {
        let rank = (step * n).div_ceil(STEPS.min(n));
        let (x, share) = (values[rank - 1], rank as f64 / n as f64);
        let below = points.last().map_or(0.0, |p| p.1);
        points.push((x, below));
        points.push((x, share));
    }
    points
}

/// Writes the detection-latency CDF of `report` to `path`: the true latency (crash → this
/// survivor marks it dead) and what each node reported (`since_last_alive`).
pub(crate) fn detection_cdf(path: &Path, report: &Report, title: &str) -> Result<()> {
    if report.detection_views.is_empty() {
        return Err(anyhow!(
            "--plot: no survivor declared a crashed member dead in this run, nothing to plot"
        ));
    }
    let truth = cdf(report.detection_views.iter().map(|v| v.0).collect());
    let reported = cdf(report.detection_views.iter().map(|v| v.1).collect());
    let x_max = truth
        .iter()
        .chain(&reported)
        .map(|p| p.0)
        .fold(1.0, f64::max)
        * 1.05;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..x_max, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("seconds after the crash")
            .y_desc("survivor views that declared it dead")
            .y_label_formatter(&|y| format!("{:.0} %", y * 100.0))
            .draw()?;
        for (points, colour, label) in [
            (truth, BLUE, "true: crash → declared dead"),
            (
                reported,
                RED,
                "reported: since_last_alive at the declaration",
            ),
        ] {
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("--plot: cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cdf_is_a_staircase_to_one_with_few_steps_for_many_values() {
        let points = cdf(vec![3.0, 1.0, 2.0]);
        assert_eq!(
            points,
            [
                (0.0, 0.0),
                (1.0, 0.0),
                (1.0, 1.0 / 3.0),
                (2.0, 1.0 / 3.0),
                (2.0, 2.0 / 3.0),
                (3.0, 2.0 / 3.0),
                (3.0, 1.0)
            ]
        );
        let many = cdf((0..1_000_000).map(f64::from).collect());
        assert_eq!(many.len(), 2 * STEPS + 1);
        assert_eq!(many.last(), Some(&(999_999.0, 1.0)));
        assert!(many
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }
}
