//! Defines the SVG charts of the tune report, drawn with `plotters`: one
//! candidate per point, the best one marked, the candidates outside the
//! guard rails hollow; optionally the best value at each x (a profile) and
//! the Pareto frontier (no other candidate is better on both axes).
//!
//! Text is left to the browser: plotters' SVG backend writes `<text>`
//! elements, so no font is needed here.

use plotters::prelude::*;

use crate::error::{Error, Result};

/// How a point is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Eligible,
    Ineligible,
    Best,
}

/// One candidate on a chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub mark: Mark,
}

/// What to draw besides the points.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Names of the x values 0, 1, 2, ... for a key that is not a number.
    pub categories: Option<Vec<String>>,
    /// A line through the best y at each x, over eligible candidates.
    pub profile: bool,
    /// The Pareto frontier, both axes to be maximised.
    pub frontier: bool,
    /// Labelled reference points (the job as it is, the baselines).
    pub references: Vec<(String, f64, f64)>,
    /// Interval bars: through (x, y), from x_low to x_high and from y_low
    /// to y_high.
    pub bars: Vec<Bar>,
}

/// A point's 95% intervals on both axes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub x_ci: [f64; 2],
    pub y_ci: [f64; 2],
}

impl Bar {
    /// A result's precision against user_coverage with their intervals,
    /// when the bootstrap gave it both.
    pub fn coverage_precision(r: &crate::eval::Named) -> Option<Bar> {
        let ci = r.ci.as_ref()?;
        Some(Bar {
            x: r.metrics.user_coverage,
            y: r.metrics.precision,
            x_ci: ci.get("user_coverage")?,
            y_ci: ci.get("precision")?,
        })
    }
}

const SIZE: (u32, u32) = (640, 430);
const LEGEND_HEIGHT: u32 = 30;
const GREY: RGBColor = RGBColor(150, 150, 150);
const STEEL: RGBColor = RGBColor(40, 90, 160);

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy)]
enum Key {
    Hollow,
    Dot,
    Line(RGBColor),
    Best,
    Reference,
}

/// One row of legend entries, left to right.
fn draw_legend<DB: DrawingBackend>(
    strip: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(&str, Key)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (mut x, y) = (40i32, 12i32);
    let font = ("sans-serif", 12).into_font();
    for (label, key) in entries {
        match key {
            Key::Hollow => strip.draw(&Circle::new((x, y), 3, GREY))?,
            Key::Dot => strip.draw(&Circle::new((x, y), 3, STEEL.filled()))?,
            Key::Line(color) => strip.draw(&PathElement::new(
                vec![(x - 8, y), (x + 8, y)],
                color.stroke_width(2),
            ))?,
            Key::Best => strip.draw(&Circle::new((x, y), 5, RED.filled()))?,
            Key::Reference => strip.draw(&TriangleMarker::new((x, y), 5, BLACK.filled()))?,
        }
        strip.draw(&Text::new(label.to_string(), (x + 12, y - 6), font.clone()))?;
        // About 6 px a character at 12 px in a browser's sans-serif.
        x += 12 + 6 * label.len() as i32 + 20;
    }
    Ok(())
}

/// The points on the Pareto frontier (maximising x and y), by x ascending.
pub fn frontier(points: &[Point]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.y)).collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for (x, y) in sorted {
        if front.last().is_none_or(|&(_, best)| y > best) {
            front.push((x, y));
        }
    }
    front.reverse();
    front
}

fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.06
    } else {
        lo.abs().max(1e-3) * 0.1
    };
    (lo - pad, hi + pad)
}

/// Decimals enough to tell ticks apart over a span.
fn decimals(span: f64) -> usize {
    if span <= 0.0 || !span.is_finite() {
        return 3;
    }
    ((-span.log10()).ceil() as i64 + 2).clamp(0, 9) as usize
}

/// Draws one chart; returns the SVG text.
pub fn chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[Point],
    extras: &Extras,
) -> Result<String> {
    let failed = |e: &dyn std::fmt::Display| Error::Internal(format!("chart {title:?}: {e}"));
    let refs = extras.references.iter();
    let (x0, x1) = match &extras.categories {
        Some(names) => (-0.5, names.len() as f64 - 0.5),
        None => padded(
            points
                .iter()
                .map(|p| p.x)
                .chain(refs.clone().map(|r| r.1))
                .chain(extras.bars.iter().flat_map(|b| b.x_ci)),
        ),
    };
    // Room on the right for the reference points' names.
    let x1 = if extras.references.is_empty() {
        x1
    } else {
        x1 + (x1 - x0) * 0.12
    };
    let (y0, y1) = padded(
        points
            .iter()
            .map(|p| p.y)
            .chain(refs.map(|r| r.2))
            .chain(extras.bars.iter().flat_map(|b| b.y_ci)),
    );
    let (x_places, y_places) = (decimals(x1 - x0), decimals(y1 - y0));
    let x_format = |v: &f64| match &extras.categories {
        Some(names) if (v - v.round()).abs() < 1e-6 && *v >= 0.0 => {
            names.get(v.round() as usize).cloned().unwrap_or_default()
        }
        Some(_) => String::new(),
        None => format!("{v:.x_places$}"),
    };
    let y_format = |v: &f64| format!("{v:.y_places$}");

    // The legend lies in a strip under the chart, where it hides no point.
    let mut legend: Vec<(&str, Key)> = Vec::new();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let (plot, strip) = root.split_vertically(SIZE.1 - LEGEND_HEIGHT);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 16))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(76)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| failed(&e))?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .light_line_style(WHITE.mix(0.0));
        if let Some(names) = &extras.categories {
            mesh.x_labels(names.len().max(2));
        }
        mesh.draw().map_err(|e| failed(&e))?;

        if !extras.bars.is_empty() {
            let bar = GREY.mix(0.6).stroke_width(1);
            let lines = extras.bars.iter().flat_map(|b| {
                [
                    PathElement::new(vec![(b.x, b.y_ci[0]), (b.x, b.y_ci[1])], bar),
                    PathElement::new(vec![(b.x_ci[0], b.y), (b.x_ci[1], b.y)], bar),
                ]
            });
            chart.draw_series(lines).map_err(|e| failed(&e))?;
            legend.push(("95% intervals", Key::Line(GREY)));
        }
        let of = |mark: Mark| points.iter().filter(move |p| p.mark == mark);
        if of(Mark::Ineligible).next().is_some() {
            chart
                .draw_series(of(Mark::Ineligible).map(|p| Circle::new((p.x, p.y), 3, GREY)))
                .map_err(|e| failed(&e))?;
            legend.push(("outside guard rails", Key::Hollow));
        }
        let eligible = points.iter().filter(|p| p.mark != Mark::Ineligible);
        chart
            .draw_series(eligible.map(|p| Circle::new((p.x, p.y), 3, STEEL.mix(0.7).filled())))
            .map_err(|e| failed(&e))?;
        legend.push(("candidate", Key::Dot));
        if extras.profile {
            let mut best: Vec<(f64, f64)> = Vec::new();
            for p in points.iter().filter(|p| p.mark != Mark::Ineligible) {
                match best.iter_mut().find(|(x, _)| *x == p.x) {
                    Some((_, y)) => *y = y.max(p.y),
                    None => best.push((p.x, p.y)),
                }
            }
            best.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(best, STEEL.stroke_width(1)))
                .map_err(|e| failed(&e))?;
            legend.push(("best at each value", Key::Line(STEEL)));
        }
        if extras.frontier {
            let front = frontier(points);
            chart
                .draw_series(LineSeries::new(front.clone(), RED.stroke_width(2)))
                .map_err(|e| failed(&e))?;
            chart
                .draw_series(front.iter().map(|&(x, y)| Circle::new((x, y), 4, RED)))
                .map_err(|e| failed(&e))?;
            legend.push(("frontier", Key::Line(RED)));
        }
        chart
            .draw_series(of(Mark::Best).map(|p| Circle::new((p.x, p.y), 6, RED.filled())))
            .map_err(|e| failed(&e))?;
        legend.push(("best", Key::Best));
        for (name, x, y) in &extras.references {
            chart
                .draw_series([TriangleMarker::new((*x, *y), 6, BLACK.filled())])
                .map_err(|e| failed(&e))?;
            chart
                .draw_series([Text::new(
                    format!("  {name}"),
                    (*x, *y),
                    ("sans-serif", 12).into_font(),
                )])
                .map_err(|e| failed(&e))?;
        }
        if !extras.references.is_empty() {
            legend.push(("job as is, baselines", Key::Reference));
        }
        draw_legend(&strip, &legend).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64) -> Point {
        Point {
            x,
            y,
            mark: Mark::Eligible,
        }
    }

    #[test]
    fn frontier_keeps_the_undominated() {
        let points = [
            p(0.1, 0.9),
            p(0.5, 0.5),
            p(0.4, 0.4),
            p(0.9, 0.1),
            p(0.5, 0.2),
        ];
        assert_eq!(frontier(&points), vec![(0.1, 0.9), (0.5, 0.5), (0.9, 0.1)]);
    }

    #[test]
    fn svg_has_text_and_points() {
        let extras = Extras {
            frontier: true,
            references: vec![("popular".into(), 0.3, 0.3)],
            ..Extras::default()
        };
        let svg = chart(
            "t",
            "user_coverage",
            "precision",
            &[p(0.1, 0.2), p(0.2, 0.1)],
            &extras,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains(">popular<") || svg.contains("popular"));
        assert!(svg.contains("<circle"));
        assert!(svg.contains("user_coverage"));
    }
}
