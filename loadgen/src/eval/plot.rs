//! The trade-off plot: hit ratio against origin fetches per request. Colour is the cache
//! size; each demand policy is one marker shape (it fetches exactly its misses, so it is a
//! single point), named in the legend; the module is a line through its sweep points, each
//! labelled with its setting, so one sees what each extra fetch buys. The x axis is
//! logarithmic: demand caches sit between 0.3 and 1 fetch per request while a prefetch
//! budget of 5 costs about 5, and on a linear axis the baselines crowd the left edge.

use std::collections::BTreeSet;
use std::path::Path;

use plotters::element::EmptyElement;
use plotters::prelude::*;

use super::report::{CacheRow, EvalReport};
use crate::error::{Error, Result};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Marker outlines in pixels around the point, one per demand policy in report order:
/// triangle, square, diamond, inverted triangle, hexagon, star.
const SHAPES: [&[(i32, i32)]; 6] = [
    &[(0, -6), (6, 5), (-6, 5)],
    &[(-5, -5), (5, -5), (5, 5), (-5, 5)],
    &[(0, -7), (6, 0), (0, 7), (-6, 0)],
    &[(0, 6), (6, -5), (-6, -5)],
    &[(-3, -6), (3, -6), (6, 0), (3, 6), (-3, 6), (-6, 0)],
    &[
        (0, -7),
        (2, -2),
        (7, -2),
        (3, 1),
        (4, 7),
        (0, 3),
        (-4, 7),
        (-3, 1),
        (-7, -2),
        (-2, -2),
    ],
];

/// The colour of the shapes in the legend (they stand for every size).
const GREY: RGBColor = RGBColor(90, 90, 90);

/// Writes the plot as SVG.
pub fn write_svg(report: &EvalReport, path: &Path) -> Result<()> {
    let svg = render(report).map_err(|e| {
        Error::io(
            path,
            std::io::Error::other(format!("drawing the plot failed: {e}")),
        )
    })?;
    std::fs::write(path, svg).map_err(|e| Error::io(path, e))
}

/// Ticks of the log axis at 1, 2, 3 and 5 times the powers of ten between `lo` and `hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    (-3..4)
        // Divided rather than multiplied by 0.1…, so that 0.3 prints as "0.3".
        .flat_map(|e: i32| {
            [1.0, 2.0, 3.0, 5.0].map(|m| {
                if e < 0 {
                    m / 10f64.powi(-e)
                } else {
                    m * 10f64.powi(e)
                }
            })
        })
        .filter(|x| (lo..=hi).contains(x))
        .collect()
}

/// The label of an edge point: the settings that vary across the edge rows, as
/// `name=value` (empty when nothing was swept).
fn point_label(row: &CacheRow, varying: &BTreeSet<&str>) -> String {
    row.settings
        .iter()
        .flatten()
        .filter(|(n, _)| varying.contains(n.as_str()))
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The plot as SVG text.
pub fn render(report: &EvalReport) -> std::result::Result<String, Box<dyn std::error::Error>> {
    let mut svg = String::new();
    draw(report, &mut svg)?;
    Ok(svg)
}

fn draw(
    report: &EvalReport,
    svg: &mut String,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut caps: Vec<u64> = report.caches.iter().map(|r| r.capacity).collect();
    caps.sort_unstable();
    caps.dedup();
    let mut policies: Vec<&str> = Vec::new();
    for r in report.caches.iter().filter(|r| !r.is_edge()) {
        if !policies.contains(&r.policy.as_str()) {
            policies.push(&r.policy);
        }
    }
    let edge_rows: Vec<&CacheRow> = report.caches.iter().filter(|r| r.is_edge()).collect();
    let varying: BTreeSet<&str> = edge_rows
        .iter()
        .flat_map(|r| r.settings.iter().flatten())
        .filter(|(n, v)| {
            edge_rows
                .iter()
                .any(|o| o.settings.as_ref().and_then(|s| s.get(*n)) != Some(v))
        })
        .map(|(n, _)| n.as_str())
        .collect();
    let xs = report
        .caches
        .iter()
        .map(|r| r.origin_fetches_per_request)
        .filter(|x| *x > 0.0);
    let x_min = xs.clone().fold(1.0f64, f64::min) * 0.8;
    let x_max = xs.fold(1.0f64, f64::max) * 1.3;
    let unit = report.caches.first().map_or("items", |r| r.capacity_unit);
    {
        let root = SVGBackend::with_string(svg, (1000, 700)).into_drawing_area();
        root.fill(&WHITE)?;
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
            .build_cartesian_2d(
                (x_min..x_max)
                    .log_scale()
                    .with_key_points(ticks(x_min, x_max)),
                0.0..1.0f64,
            )?;
        chart
            .configure_mesh()
            .x_desc("origin fetches per request (misses + prefetches; log scale)")
            .y_desc("hit ratio")
            .x_label_formatter(&|x| format!("{x}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (ci, cap) in caps.iter().enumerate() {
            let color = COLORS[ci % COLORS.len()];
            let mut edge: Vec<&CacheRow> = edge_rows
                .iter()
                .copied()
                .filter(|r| r.capacity == *cap)
                .collect();
            edge.sort_by(|a, b| {
                a.origin_fetches_per_request
                    .total_cmp(&b.origin_fetches_per_request)
            });
            let line: Vec<(f64, f64)> = edge
                .iter()
                .map(|r| (r.origin_fetches_per_request, r.hit_ratio))
                .collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                .label(format!("{cap} {unit}: edge (line), demand caches (shapes)"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            chart.draw_series(edge.iter().map(|r| {
                let label = point_label(r, &varying);
                EmptyElement::at((r.origin_fetches_per_request, r.hit_ratio))
                    + Text::new(
                        if label.is_empty() {
                            "edge".to_owned()
                        } else {
                            label
                        },
                        (-40, -20),
                        ("sans-serif", 12).into_font().color(&color),
                    )
            }))?;
        }
        for (pi, policy) in policies.iter().enumerate() {
            let points: Vec<(f64, f64, RGBColor)> = report
                .caches
                .iter()
                .filter(|r| r.policy == *policy)
                .map(|r| {
                    let ci = caps.iter().position(|c| *c == r.capacity).unwrap_or(0);
                    (
                        r.origin_fetches_per_request,
                        r.hit_ratio,
                        COLORS[ci % COLORS.len()],
                    )
                })
                .collect();
            let name = if *policy == "belady" {
                "belady (offline optimum of demand caches)".to_owned()
            } else {
                (*policy).to_owned()
            };
            chart
                .draw_series(points.iter().map(|&(x, y, c)| {
                    EmptyElement::at((x, y))
                        + Polygon::new(SHAPES[pi % SHAPES.len()].to_vec(), c.filled())
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    EmptyElement::at((x + 10, y))
                        + Polygon::new(SHAPES[pi % SHAPES.len()].to_vec(), GREY.filled())
                });
        }
        chart
            .configure_series_labels()
            // Upper left: above the demand caches, left of the edge curves, which rise
            // to the right.
            .position(SeriesLabelPosition::UpperLeft)
            .margin(12)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::report::InputInfo;
    use crate::logs::Format;

    fn report() -> EvalReport {
        let mut caches = Vec::new();
        for cap in [50, 100] {
            for (p, hits) in [("lru", 40), ("lfu", 41), ("belady", 60)] {
                caches.push(CacheRow::new(p.into(), cap, "items", 100, hits, None));
            }
            for (budget, hits, pf) in [("1", 50, 90), ("5", 70, 480)] {
                let mut r = CacheRow::new(
                    format!("edge[prefetch-budget={budget}]"),
                    cap,
                    "items",
                    100,
                    hits,
                    Some((pf, pf / 4)),
                );
                r.settings = Some(
                    [
                        ("prefetch-budget".to_owned(), budget.to_owned()),
                        ("prefetch-k".to_owned(), "3".to_owned()),
                    ]
                    .into(),
                );
                caches.push(r);
            }
        }
        EvalReport {
            events: 100,
            k: 10,
            edge_source: "in-process",
            input: InputInfo {
                file: "t".into(),
                format: Format::Jsonl,
                users: 1,
                items: 1,
                malformed: 0,
                malformed_examples: Vec::new(),
            },
            predictors: Default::default(),
            caches,
            elapsed_s: 0.0,
        }
    }

    /// How many text elements of `svg` read exactly `text` (plotters writes each text's
    /// content on a line of its own).
    fn texts(svg: &str, text: &str) -> usize {
        svg.lines().filter(|l| *l == text).count()
    }

    #[test]
    fn every_mark_is_named_and_the_axis_is_logarithmic() {
        let svg = render(&report()).unwrap();
        // Each sweep point carries the setting that varies (not the one that does not).
        assert_eq!(texts(&svg, "prefetch-budget=5"), 2, "{svg}");
        assert_eq!(texts(&svg, "prefetch-budget=1"), 2);
        assert!(!svg.contains("prefetch-k=3"));
        // Each demand policy has one legend entry, and no text label crowds the points.
        for name in ["lru", "lfu", "belady (offline optimum of demand caches)"] {
            assert_eq!(texts(&svg, name), 1, "{name}");
        }
        assert!(!svg.contains("lru 50"));
        assert_eq!(
            texts(&svg, "50 items: edge (line), demand caches (shapes)"),
            1
        );
        // Fetches run from 0.4 to 5.3: ticks at 0.5, 1, 2, 3 and 5 on a log axis.
        assert!(svg.contains("log scale"));
        for t in ["0.5", "1", "2", "3", "5"] {
            assert!(texts(&svg, t) >= 1, "tick {t}");
        }
        assert_eq!(ticks(0.3, 6.0), [0.3, 0.5, 1.0, 2.0, 3.0, 5.0]);
    }
}
