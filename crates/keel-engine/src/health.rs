//! Health: each component's metric mapped onto its curve, weighted (with
//! the segment's overrides), the coverage, and the band.

use super::*;

/// Maps a metric value onto a curve of (value, score) points.
pub(crate) fn curve_score(curve: &[(f64, f64)], x: f64) -> f64 {
    let (Some(first), Some(last)) = (curve.first(), curve.last()) else { return 0.0 };
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    for w in curve.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x <= x1 {
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
        }
    }
    last.1
}

pub(crate) fn health(plan: &Plan, m: &Metrics<'_, '_>, segment: Option<&str>) -> Health {
    let h = &plan.journey.health;
    let overrides = segment.and_then(|s| h.segment_weights.get(s));
    let mut components = Vec::new();
    let (mut total, mut covered, mut sum) = (0.0, 0.0, 0.0);
    for c in &h.components {
        let weight = overrides.and_then(|o| o.get(&c.id)).copied().unwrap_or(c.weight);
        let value = m.get(&c.metric);
        let score = value.map(|v| curve_score(&c.curve, v.as_f64()));
        total += weight;
        if let Some(s) = score {
            covered += weight;
            sum += weight * s;
        }
        components.push(ComponentScore { id: c.id.clone(), metric: c.metric.clone(), value, score, weight });
    }
    let coverage = if total > 0.0 { covered / total } else { 0.0 };
    let score = (covered > 0.0).then(|| sum / covered);
    let band = score.map(|s| {
        if s < h.red {
            Band::Red
        } else if s < h.yellow {
            Band::Yellow
        } else {
            Band::Green
        }
    });
    Health { score, band, coverage, uncertain: coverage < h.min_coverage, components }
}
