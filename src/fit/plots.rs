//! The report's figures, drawn with `plotters` to SVG and PNG with an embedded font (DejaVu Sans, from the `dejavu`
//! crate), so they render identically without fontconfig or any system font: the LASSO path and CV deviance
//! (the study's Figure 2), ROC curves (Figures 3 and 4), the nomogram, calibration curves (Figure 4) and decision
//! curves (Figure 5).

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::model::Nomogram;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Solid line.
    Line,
    /// Dashed line.
    Dashed,
    /// Points with a connecting line.
    Points,
}

/// One curve.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
    /// Style.
    pub mark: Mark,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// x range.
    pub x: (f64, f64),
    /// y range.
    pub y: (f64, f64),
    /// Curves.
    pub series: Vec<Series>,
    /// Vertical reference lines with labels.
    pub vlines: Vec<(f64, String)>,
    /// Draw the diagonal y = x (ROC, calibration).
    pub diagonal: bool,
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Plot(e.to_string())
}

fn draw_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Chart) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(c.x.0..c.x.1, c.y.0..c.y.1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .label_style(("sans-serif", 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(plot_err)?;
    if c.diagonal {
        let lo = c.x.0.max(c.y.0);
        let hi = c.x.1.min(c.y.1);
        chart
            .draw_series(LineSeries::new(
                vec![(lo, lo), (hi, hi)],
                RGBColor(170, 170, 170).stroke_width(1),
            ))
            .map_err(plot_err)?;
    }
    for (x, label) in &c.vlines {
        chart
            .draw_series(LineSeries::new(
                vec![(*x, c.y.0), (*x, c.y.1)],
                RGBColor(120, 120, 120).stroke_width(1),
            ))
            .map_err(plot_err)?
            .label(label.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(120, 120, 120)));
    }
    for (k, s) in c.series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let style = color.stroke_width(2);
        let anno = match s.mark {
            Mark::Line | Mark::Points => chart
                .draw_series(LineSeries::new(s.points.clone(), style))
                .map_err(plot_err)?,
            Mark::Dashed => chart
                .draw_series(DashedLineSeries::new(s.points.clone(), 6, 4, style))
                .map_err(plot_err)?,
        };
        anno.label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        if s.mark == Mark::Points {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(plot_err)?;
        }
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// Write a chart as SVG and PNG.
pub fn write_chart(dir: &Path, stem: &str, chart: &Chart) -> Result<()> {
    register_font();
    let size = (760, 560);
    let svg = dir.join(format!("{stem}.svg"));
    draw_chart(&SVGBackend::new(&svg, size).into_drawing_area(), chart)?;
    let png = dir.join(format!("{stem}.png"));
    draw_chart(&BitMapBackend::new(&png, size).into_drawing_area(), chart)?;
    Ok(())
}

/// ROC curve points (FPR, TPR) of scores, thresholds at every distinct score.
pub fn roc_points(score: &[f64], y: &[bool]) -> Vec<(f64, f64)> {
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let pos = y.iter().filter(|&&b| b).count().max(1) as f64;
    let neg = (y.len() as f64 - pos).max(1.0);
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut pts = vec![(0.0, 0.0)];
    let mut k = 0;
    while k < idx.len() {
        let s = score[idx[k]];
        while k < idx.len() && score[idx[k]] == s {
            if y[idx[k]] {
                tp += 1.0
            } else {
                fp += 1.0
            }
            k += 1;
        }
        pts.push((fp / neg, tp / pos));
    }
    pts
}

/// A nice tick step for a range.
fn tick_step(span: f64, target: usize) -> f64 {
    let raw = span / target as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    mag * if n < 1.5 {
        1.0
    } else if n < 3.5 {
        2.0
    } else if n < 7.5 {
        5.0
    } else {
        10.0
    }
}

fn draw_nomogram<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, n: &Nomogram) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_err)?;
    let (w, _) = root.dim_in_pixel();
    let (left, right) = (190i32, w as i32 - 40);
    let max_total: f64 = n
        .predictors
        .iter()
        .map(|q| n.points_of(q, q.max).max(n.points_of(q, q.min)))
        .sum::<f64>()
        .max(1.0);
    let font = ("sans-serif", 14).into_font();
    let small = ("sans-serif", 11).into_font();
    let black = ShapeStyle::from(&BLACK).stroke_width(1);
    let mut row = 0;
    let mut axis = |name: &str, scale_max: f64, ticks: Vec<(f64, String)>| -> Result<()> {
        let y = 40 + row * 56;
        row += 1;
        root.draw(&Text::new(name.to_string(), (12, y - 7), font.clone()))
            .map_err(plot_err)?;
        let x_of = |pts: f64| left + ((right - left) as f64 * pts / scale_max).round() as i32;
        let (lo, hi) = ticks.iter().fold((i32::MAX, i32::MIN), |(a, b), (p, _)| {
            (a.min(x_of(*p)), b.max(x_of(*p)))
        });
        root.draw(&PathElement::new(vec![(lo, y), (hi, y)], black))
            .map_err(plot_err)?;
        for (p, label) in ticks {
            let x = x_of(p);
            root.draw(&PathElement::new(vec![(x, y), (x, y - 6)], black))
                .map_err(plot_err)?;
            root.draw(&Text::new(label, (x - 10, y - 22), small.clone()))
                .map_err(plot_err)?;
        }
        Ok(())
    };
    axis(
        "Points",
        100.0,
        (0..=10).map(|k| (f64::from(k) * 10.0, format!("{}", k * 10))).collect(),
    )?;
    for q in &n.predictors {
        let values: Vec<f64> = if q.binary {
            vec![0.0, 1.0]
        } else {
            let step = tick_step(q.max - q.min, 5);
            let start = (q.min / step).ceil() * step;
            (0..)
                .map(|k| start + f64::from(k) * step)
                .take_while(|v| *v <= q.max + 1e-12)
                .collect()
        };
        let ticks = values
            .iter()
            .map(|&v| {
                (
                    n.points_of(q, v),
                    if q.binary { format!("{v:.0}") } else { format!("{v:.3}") },
                )
            })
            .collect();
        axis(&q.name, 100.0, ticks)?;
    }
    let step = tick_step(max_total, 8);
    axis(
        "Total points",
        max_total,
        (0..)
            .map(|k| f64::from(k) * step)
            .take_while(|v| *v <= max_total + 1e-9)
            .map(|v| (v, format!("{v:.0}")))
            .collect(),
    )?;
    let probs = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];
    let ticks: Vec<(f64, String)> = probs
        .iter()
        .filter_map(|&p| {
            // total points giving probability p: invert probability_at by bisection (monotone)
            let (mut a, mut b) = (0.0, max_total);
            if p < n.probability_at(a) || p > n.probability_at(b) {
                return None;
            }
            for _ in 0..60 {
                let m = (a + b) / 2.0;
                if n.probability_at(m) < p { a = m } else { b = m }
            }
            Some((a, format!("{p}")))
        })
        .collect();
    if !ticks.is_empty() {
        axis("Risk of ALN metastasis", max_total, ticks)?;
    }
    root.present().map_err(plot_err)
}

/// Write the nomogram drawing as SVG and PNG.
pub fn write_nomogram(dir: &Path, stem: &str, n: &Nomogram) -> Result<()> {
    register_font();
    let height = 60 + 56 * (n.predictors.len() as u32 + 3);
    let size = (900, height);
    let svg = dir.join(format!("{stem}.svg"));
    draw_nomogram(&SVGBackend::new(&svg, size).into_drawing_area(), n)?;
    let png = dir.join(format!("{stem}.png"));
    draw_nomogram(&BitMapBackend::new(&png, size).into_drawing_area(), n)?;
    Ok(())
}
