//! Small charts drawn on the server as inline SVG.

use maud::{Markup, html};

/// A sparkline of `values` (None: a gap), scaled to its own range, with a
/// text alternative for screen readers.
pub fn sparkline(values: &[Option<f64>], label: &str) -> Markup {
    let (w, h) = (120.0, 28.0);
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let (lo, hi) = known.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let step = if values.len() > 1 { w / (values.len() - 1) as f64 } else { 0.0 };
    let mut path = String::new();
    let mut pen_up = true;
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else {
            pen_up = true;
            continue;
        };
        let x = i as f64 * step;
        let y = h - 2.0 - (v - lo) / span * (h - 4.0);
        path.push_str(&format!("{}{x:.1},{y:.1} ", if pen_up { "M" } else { "L" }));
        pen_up = false;
    }
    html! {
        svg.spark viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h) role="img" aria-label=(label) {
            path d=(path.trim_end()) fill="none" stroke="currentColor" stroke-width="1.5";
        }
    }
}

/// A horizontal bar split into parts (value, CSS class, label).
pub fn stacked_bar(parts: &[(f64, &str, String)], label: &str) -> Markup {
    let total: f64 = parts.iter().map(|p| p.0).sum();
    let mut x = 0.0;
    let rects: Vec<(f64, f64, &str, &str)> = parts
        .iter()
        .map(|(v, class, title)| {
            let width = if total > 0.0 { v / total * 100.0 } else { 0.0 };
            let at = x;
            x += width;
            (at, width, *class, title.as_str())
        })
        .collect();
    html! {
        svg.bar viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label=(label) {
            @for (at, width, class, title) in rects {
                rect class=(class) x=(format!("{at:.2}")) y="0" width=(format!("{width:.2}")) height="8" {
                    title { (title) }
                }
            }
        }
    }
}

/// One series of a line chart.
pub struct Series<'a> {
    /// Shown in the legend and the text alternative.
    pub name: &'a str,
    /// CSS class giving its colour.
    pub class: &'a str,
    /// One value per x position (None: a gap).
    pub values: Vec<Option<f64>>,
}

const W: f64 = 640.0;
const H: f64 = 220.0;
/// Left, right, top and bottom margins inside the view box.
const M: (f64, f64, f64, f64) = (48.0, 32.0, 12.0, 28.0);

fn path(values: &[Option<f64>], x: impl Fn(usize) -> f64, y: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_up = true;
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else {
            pen_up = true;
            continue;
        };
        d.push_str(&format!("{}{:.1},{:.1} ", if pen_up { "M" } else { "L" }, x(i), y(*v)));
        pen_up = false;
    }
    d.trim_end().to_owned()
}

/// Round tick values covering `[lo, hi]`, about five of them.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step + 1e-9).floor() as i64;
    let last = (hi / step - 1e-9).ceil() as i64;
    (first..=last.max(first + 1)).map(|k| k as f64 * step).collect()
}

/// A line chart of several series over the same x labels, with a y axis
/// formatted by `fmt` and a legend; `label` is the text alternative. The y
/// axis spans the values.
pub fn line_chart(series: &[Series<'_>], x_labels: &[String], fmt: fn(f64) -> String, label: &str) -> Markup {
    line_chart_on(series, x_labels, fmt, label, None, &[])
}

/// [`line_chart`] on a fixed y range, with labelled horizontal rules (e.g.
/// the health bands' thresholds).
pub fn line_chart_on(
    series: &[Series<'_>],
    x_labels: &[String],
    fmt: fn(f64) -> String,
    label: &str,
    range: Option<(f64, f64)>,
    rules: &[(f64, String)],
) -> Markup {
    let known = series.iter().flat_map(|s| s.values.iter().flatten().copied());
    let (mut lo, mut hi) = known.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if let Some(r) = range {
        (lo, hi) = r;
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let ticks = ticks(lo, hi);
    let (lo, hi) = (ticks.first().copied().unwrap_or(lo), ticks.last().copied().unwrap_or(hi).max(lo + 1e-9));
    let n = x_labels.len().max(1);
    let x = |i: usize| M.0 + if n > 1 { i as f64 * (W - M.0 - M.1) / (n - 1) as f64 } else { 0.0 };
    let y = |v: f64| H - M.3 - (v - lo) / (hi - lo) * (H - M.2 - M.3);
    let every = n.div_ceil(12).max(1);
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) {
                @for t in &ticks {
                    line.grid x1=(M.0) x2=(W - M.1) y1=(format!("{:.1}", y(*t))) y2=(format!("{:.1}", y(*t))) {}
                    text.axis x=(M.0 - 6.0) y=(format!("{:.1}", y(*t) + 4.0)) text-anchor="end" { (fmt(*t)) }
                }
                @for (i, l) in x_labels.iter().enumerate() {
                    @if i % every == 0 {
                        text.axis x=(format!("{:.1}", x(i))) y=(H - 8.0) text-anchor="middle" { (l) }
                    }
                }
                @for (v, l) in rules {
                    line.marker x1=(M.0) x2=(W - M.1) y1=(format!("{:.1}", y(*v))) y2=(format!("{:.1}", y(*v))) {}
                    text.marker x=(W - M.1 + 2.0) y=(format!("{:.1}", y(*v) + 4.0)) { (l) }
                }
                @for s in series {
                    path class=(format!("series {}", s.class)) d=(path(&s.values, x, y)) fill="none" stroke-width="2" {}
                    @for (i, v) in s.values.iter().enumerate() {
                        @if let Some(v) = v {
                            circle class=(format!("series {}", s.class)) cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="3" {
                                title { (s.name) ", " (x_labels.get(i).cloned().unwrap_or_default()) ": " (fmt(*v)) }
                            }
                        }
                    }
                }
            }
            figcaption.legend {
                @for s in series { span class=(format!("key {}", s.class)) { (s.name) } " " }
            }
        }
    }
}

/// A bar chart of counts over labelled bins, with vertical markers at some
/// x values (each `(bin position as a fraction of the bins, label)`).
pub fn bars(counts: &[(String, u64)], markers: &[(f64, String)], label: &str) -> Markup {
    let max = counts.iter().map(|c| c.1).max().unwrap_or(0).max(1) as f64;
    let ticks = ticks(0.0, max);
    let top = ticks.last().copied().unwrap_or(max).max(1.0);
    let n = counts.len().max(1) as f64;
    let bw = (W - M.0 - M.1) / n;
    let y = |v: f64| H - M.3 - v / top * (H - M.2 - M.3);
    let every = counts.len().div_ceil(10).max(1);
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) {
                @for t in &ticks {
                    line.grid x1=(M.0) x2=(W - M.1) y1=(format!("{:.1}", y(*t))) y2=(format!("{:.1}", y(*t))) {}
                    text.axis x=(M.0 - 6.0) y=(format!("{:.1}", y(*t) + 4.0)) text-anchor="end" { (format!("{t:.0}")) }
                }
                @for (i, (l, c)) in counts.iter().enumerate() {
                    @let x = M.0 + i as f64 * bw;
                    rect.barfill x=(format!("{:.1}", x + 1.0)) y=(format!("{:.1}", y(*c as f64))) width=(format!("{:.1}", (bw - 2.0).max(1.0))) height=(format!("{:.1}", H - M.3 - y(*c as f64))) {
                        title { (l) ": " (c) }
                    }
                    @if i % every == 0 {
                        text.axis x=(format!("{:.1}", x)) y=(H - 8.0) text-anchor="start" { (l) }
                    }
                }
                @for (at, l) in markers {
                    @let x = M.0 + at * (W - M.0 - M.1);
                    line.marker x1=(format!("{x:.1}")) x2=(format!("{x:.1}")) y1=(M.2) y2=(H - M.3) {}
                    text.marker x=(format!("{:.1}", x + 4.0)) y=(M.2 + 10.0) { (l) }
                }
            }
        }
    }
}

/// An ROC curve (false-positive rate, true-positive rate) on the unit
/// square, with the diagonal of a score that knows nothing.
pub fn roc(points: &[(f64, f64)], label: &str) -> Markup {
    let side = 240.0;
    let pad = 40.0;
    let px = |v: f64| pad + v * side;
    let py = |v: f64| pad + side - v * side;
    let d = path(&points.iter().map(|p| Some(p.1)).collect::<Vec<_>>(), |i| px(points[i].0), py);
    let full = side + 2.0 * pad;
    html! {
        figure.chart.square {
            svg viewBox=(format!("0 0 {full} {}", full + 8.0)) role="img" aria-label=(label) {
                rect.frame x=(pad) y=(pad) width=(side) height=(side) {}
                line.chance x1=(px(0.0)) y1=(py(0.0)) x2=(px(1.0)) y2=(py(1.0)) {}
                path.series.nrr d=(d) fill="none" stroke-width="2" {}
                @for t in [0.0, 0.5, 1.0] {
                    text.axis x=(px(t)) y=(full - 20.0) text-anchor="middle" { (format!("{t:.1}")) }
                    text.axis x=(pad - 6.0) y=(py(t) + 4.0) text-anchor="end" { (format!("{t:.1}")) }
                }
                text.axis x=(px(0.5)) y=(full + 2.0) text-anchor="middle" { "share of stayers flagged" }
                text.axis x="10" y=(py(0.5)) text-anchor="middle" transform=(format!("rotate(-90 10 {})", py(0.5))) { "share of churners flagged" }
            }
        }
    }
}

/// Rates with their 95% intervals as horizontal bars on a shared 0–`top`
/// scale: `(label, CSS class, rate, low, high)`.
pub fn intervals(rows: &[(String, &str, f64, f64, f64)], label: &str) -> Markup {
    let top = rows.iter().map(|r| r.4).fold(0.0, f64::max).max(0.01);
    let ticks = ticks(0.0, top);
    let top = ticks.last().copied().unwrap_or(top);
    let (w, row_h, left) = (W, 26.0, 110.0);
    let h = rows.len() as f64 * row_h + 24.0;
    let x = |v: f64| left + v / top * (w - left - 16.0);
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(label) {
                @for t in &ticks {
                    line.grid x1=(format!("{:.1}", x(*t))) x2=(format!("{:.1}", x(*t))) y1="0" y2=(h - 20.0) {}
                    text.axis x=(format!("{:.1}", x(*t))) y=(h - 6.0) text-anchor="middle" { (format!("{:.0}%", t * 100.0)) }
                }
                @for (i, (l, class, rate, low, high)) in rows.iter().enumerate() {
                    @let cy = i as f64 * row_h + row_h / 2.0;
                    text.axis x=(left - 8.0) y=(format!("{:.1}", cy + 4.0)) text-anchor="end" { (l) }
                    rect class=(format!("barfill {class}")) x=(left) y=(format!("{:.1}", cy - 7.0)) width=(format!("{:.1}", x(*rate) - left)) height="14" {
                        title { (l) ": " (format!("{:.1}% (95% interval {:.1}–{:.1}%)", rate * 100.0, low * 100.0, high * 100.0)) }
                    }
                    line.whisker x1=(format!("{:.1}", x(*low))) x2=(format!("{:.1}", x(*high))) y1=(format!("{cy:.1}")) y2=(format!("{cy:.1}")) {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t: Vec<String> = super::ticks(0.0, 1.0).iter().map(|t| format!("{t:.2}")).collect();
        assert_eq!(t, ["0.00", "0.20", "0.40", "0.60", "0.80", "1.00"]);
        let t = super::ticks(0.83, 1.07);
        assert!(t[0] <= 0.83 && *t.last().unwrap() >= 1.07 - 1e-9, "{t:?}");
        assert!(t.len() <= 8, "{t:?}");
    }

    #[test]
    fn a_line_chart_plots_each_series_with_a_title_per_point() {
        let s = [super::Series { name: "NRR", class: "nrr", values: vec![Some(1.0), None, Some(1.1)] }];
        let labels: Vec<String> = ["Jan", "Feb", "Mar"].map(String::from).to_vec();
        let svg = super::line_chart(&s, &labels, |v| format!("{v:.2}"), "NRR by month").into_string();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains("<title>NRR, Mar: 1.10</title>"), "{svg}");
        assert!(svg.contains("aria-label=\"NRR by month\""));
    }

    #[test]
    fn a_sparkline_breaks_at_gaps_and_spans_its_range() {
        let svg = super::sparkline(&[Some(1.0), Some(2.0), None, Some(3.0)], "NRR by month").into_string();
        assert!(svg.contains("M0.0,26.0 L40.0,14.0 M120.0,2.0"), "{svg}");
        assert!(svg.contains("aria-label=\"NRR by month\""));
    }
}
