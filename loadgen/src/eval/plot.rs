//! The trade-off plot: hit ratio against origin fetches per request, one colour per cache
//! size. Demand policies are single points (they fetch exactly their misses); the module
//! is a curve traced by the prefetch sweep, so one sees what each extra fetch buys.

use std::path::Path;

use plotters::prelude::*;

use super::report::EvalReport;
use crate::error::{Error, Result};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Writes the plot as SVG.
pub fn write_svg(report: &EvalReport, path: &Path) -> Result<()> {
    draw(report, path).map_err(|e| {
        Error::io(
            path,
            std::io::Error::other(format!("drawing the plot failed: {e}")),
        )
    })
}

fn draw(report: &EvalReport, path: &Path) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut caps: Vec<u64> = report.caches.iter().map(|r| r.capacity).collect();
    caps.sort_unstable();
    caps.dedup();
    let x_max = report
        .caches
        .iter()
        .map(|r| r.origin_fetches_per_request)
        .fold(1.0f64, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let unit = report.caches.first().map_or("items", |r| r.capacity_unit);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "hit ratio vs origin fetches per request ({} events, edge from {})",
                report.events, report.edge_source
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x_max, 0.0..1.0f64)?;
    chart
        .configure_mesh()
        .x_desc("origin fetches per request (misses + prefetches)")
        .y_desc("hit ratio")
        .draw()?;
    for (ci, cap) in caps.iter().enumerate() {
        let color = COLORS[ci % COLORS.len()];
        let mut edge: Vec<(f64, f64)> = report
            .caches
            .iter()
            .filter(|r| r.capacity == *cap && r.is_edge())
            .map(|r| (r.origin_fetches_per_request, r.hit_ratio))
            .collect();
        edge.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !edge.is_empty() {
            chart
                .draw_series(LineSeries::new(edge.clone(), color.stroke_width(2)))?
                .label(format!("edge, {cap} {unit}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(edge.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        for r in report
            .caches
            .iter()
            .filter(|r| r.capacity == *cap && !r.is_edge())
        {
            let p = (r.origin_fetches_per_request, r.hit_ratio);
            chart.draw_series(std::iter::once(TriangleMarker::new(p, 5, color.filled())))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{} {}", r.policy, cap),
                (p.0 + x_max * 0.008, p.1),
                ("sans-serif", 11).into_font().color(&color),
            )))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
