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

#[cfg(test)]
mod tests {
    #[test]
    fn a_sparkline_breaks_at_gaps_and_spans_its_range() {
        let svg = super::sparkline(&[Some(1.0), Some(2.0), None, Some(3.0)], "NRR by month").into_string();
        assert!(svg.contains("M0.0,26.0 L40.0,14.0 M120.0,2.0"), "{svg}");
        assert!(svg.contains("aria-label=\"NRR by month\""));
    }
}
