//! The health backtest (docs/metrics.md): at each snapshot date, every
//! active account's health score and band as evaluated *as of that date*
//! (no later data), against whether the account churned within the next 90
//! days. Reports the ROC AUC of the score (with a 95% interval from a
//! bootstrap that resamples accounts, since one account appears in many
//! snapshots), the top-decile lift, the churn rate per band with Wilson
//! intervals (calibration), and the accounts that were green and churned.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use keel_core::{Band, Date, ExternalId};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::ratio;

/// One account on one snapshot date.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    /// The account.
    pub account: ExternalId,
    /// The snapshot date (the evaluation's as-of).
    pub on: Date,
    /// Health score then (None: no component had data).
    pub score: Option<f64>,
    /// Band then (None: no component had data).
    pub band: Option<Band>,
    /// The first day within the next 90 days the account had no line in
    /// force (None: it stayed active).
    pub churned_on: Option<Date>,
}

/// A rate with its 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rate {
    /// Events.
    pub k: u64,
    /// Trials.
    pub n: u64,
    /// k / n.
    pub rate: Option<f64>,
    /// Lower bound.
    pub low: Option<f64>,
    /// Upper bound.
    pub high: Option<f64>,
}

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

impl Rate {
    /// `k` of `n`, with the Wilson score interval
    /// `(p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)`.
    pub fn wilson(k: u64, n: u64) -> Self {
        if n == 0 {
            return Self { k, n, rate: None, low: None, high: None };
        }
        let (kf, nf, z2) = (k as f64, n as f64, Z95 * Z95);
        let p = kf / nf;
        let centre = p + z2 / (2.0 * nf);
        let spread = Z95 * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
        let den = 1.0 + z2 / nf;
        Self { k, n, rate: Some(p), low: Some((centre - spread) / den), high: Some((centre + spread) / den) }
    }
}

/// One band's calibration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BandRow {
    /// green, yellow, red, or `no data`.
    pub band: String,
    /// Churn within 90 days among its snapshots.
    pub churn: Rate,
}

/// A snapshot that was green and churned within 90 days.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GreenButChurned {
    /// The account.
    pub account: ExternalId,
    /// The snapshot date.
    pub on: Date,
    /// Its score then.
    pub score: Option<f64>,
    /// The day it churned.
    pub churned_on: Date,
}

/// `keel report health`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthBacktest {
    /// The snapshot dates.
    pub dates: Vec<Date>,
    /// Snapshots (account × date).
    pub snapshots: u64,
    /// Of which churned within 90 days.
    pub churned: u64,
    /// Snapshots with a score.
    pub scored: u64,
    /// Probability that a churner's score is below a stayer's (ties half).
    pub auc: Option<f64>,
    /// 95% interval, bootstrapping accounts.
    pub auc_low: Option<f64>,
    /// Upper bound.
    pub auc_high: Option<f64>,
    /// Churn rate among the lowest-scoring tenth / churn rate among all scored.
    pub top_decile_lift: Option<f64>,
    /// Churn rate of the lowest-scoring tenth.
    pub top_decile: Rate,
    /// Churn rate of all scored snapshots.
    pub base: Rate,
    /// Churn per band.
    pub by_band: Vec<BandRow>,
    /// Green snapshots that churned within 90 days, by date then account.
    pub green_but_churned: Vec<GreenButChurned>,
    /// The ROC curve of the score, thinned to at most [`ROC_POINTS`] points.
    pub roc: Vec<RocPoint>,
}

/// One point of the ROC curve: flag every snapshot scoring at or below
/// `threshold` as at risk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RocPoint {
    /// The score flagged at or below (None for the origin: nothing flagged).
    pub threshold: Option<f64>,
    /// Share of stayers flagged.
    pub false_positive_rate: f64,
    /// Share of churners flagged.
    pub true_positive_rate: f64,
}

/// The most points the report keeps of the ROC curve.
pub const ROC_POINTS: usize = 200;

/// The ROC curve of `(score, churned)` pairs, one point per distinct score
/// from the lowest up, after the origin; empty without churners or stayers.
/// Its trapezoid area is [`auc`].
pub fn roc_curve(pairs: &[(f64, bool)]) -> Vec<RocPoint> {
    let churners = pairs.iter().filter(|p| p.1).count();
    let stayers = pairs.len() - churners;
    if churners == 0 || stayers == 0 {
        return Vec::new();
    }
    let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = vec![RocPoint { threshold: None, false_positive_rate: 0.0, true_positive_rate: 0.0 }];
    let (mut c, mut s) = (0usize, 0usize);
    let mut i = 0;
    while i < sorted.len() {
        let score = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == score {
            if sorted[i].1 {
                c += 1;
            } else {
                s += 1;
            }
            i += 1;
        }
        out.push(RocPoint {
            threshold: Some(score),
            false_positive_rate: s as f64 / stayers as f64,
            true_positive_rate: c as f64 / churners as f64,
        });
    }
    out
}

/// Keeps at most `n` (≥ 2) points of a curve, evenly spaced, with both ends.
fn thin(points: Vec<RocPoint>, n: usize) -> Vec<RocPoint> {
    if points.len() <= n {
        return points;
    }
    let last = points.len() - 1;
    (0..n).map(|k| points[k * last / (n - 1)]).collect()
}

/// The Mann–Whitney AUC of `(score, churned)` pairs: the probability that a
/// churner scores lower than a stayer, ties counting half.
pub fn auc(pairs: &[(f64, bool)]) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut churners, mut stayers) = (0u64, 0u64);
    // Σ over churners of the stayers scoring above them (ties half).
    let mut wins = 0.0;
    let mut i = 0;
    let total_stayers = sorted.iter().filter(|p| !p.1).count() as u64;
    let mut stayers_below = 0u64;
    while i < sorted.len() {
        let mut j = i;
        let (mut c, mut s) = (0u64, 0u64);
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            if sorted[j].1 {
                c += 1
            } else {
                s += 1
            }
            j += 1;
        }
        let above = total_stayers - stayers_below - s;
        wins += c as f64 * (above as f64 + 0.5 * s as f64);
        stayers_below += s;
        churners += c;
        stayers += s;
        i = j;
    }
    (churners > 0 && stayers > 0).then(|| wins / (churners as f64 * stayers as f64))
}

/// Days after a snapshot within which a churn counts.
pub const HORIZON_DAYS: u64 = 90;

/// Bootstrap resamples for the AUC interval.
pub const RESAMPLES: usize = 400;

/// The backtest over `snapshots` (deterministic: the bootstrap's seed is fixed).
pub fn report(snapshots: &[Snapshot]) -> HealthBacktest {
    let mut dates: Vec<Date> = snapshots.iter().map(|s| s.on).collect();
    dates.sort();
    dates.dedup();
    let scored: Vec<&Snapshot> = snapshots.iter().filter(|s| s.score.is_some()).collect();
    let pairs: Vec<(f64, bool)> =
        scored.iter().map(|s| (s.score.unwrap_or_default(), s.churned_on.is_some())).collect();
    let auc_all = auc(&pairs);

    // Bootstrap over accounts: an account's snapshots move together.
    let mut by_account: BTreeMap<&ExternalId, Vec<(f64, bool)>> = BTreeMap::new();
    for (s, p) in scored.iter().zip(&pairs) {
        by_account.entry(&s.account).or_default().push(*p);
    }
    let clusters: Vec<&Vec<(f64, bool)>> = by_account.values().collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x6b65_656c);
    let mut aucs = Vec::with_capacity(RESAMPLES);
    if auc_all.is_some() {
        for _ in 0..RESAMPLES {
            let mut sample = Vec::with_capacity(pairs.len());
            for _ in 0..clusters.len() {
                sample.extend_from_slice(clusters[rng.random_range(0..clusters.len())]);
            }
            if let Some(a) = auc(&sample) {
                aucs.push(a);
            }
        }
    }
    aucs.sort_by(f64::total_cmp);
    let pick = |q: f64| crate::ttv::quantile(&aucs, q);

    let mut by_score = pairs.clone();
    by_score.sort_by(|a, b| a.0.total_cmp(&b.0));
    let tenth = by_score.len().div_ceil(10);
    let churned_in = |ps: &[(f64, bool)]| ps.iter().filter(|p| p.1).count() as u64;
    let top_decile = Rate::wilson(churned_in(&by_score[..tenth]), tenth as u64);
    let base = Rate::wilson(churned_in(&by_score), by_score.len() as u64);

    // Keyed by band, healthiest first; no band ("no data") last.
    let mut bands: BTreeMap<Reverse<Option<Band>>, (u64, u64)> = BTreeMap::new();
    for s in snapshots {
        let slot = bands.entry(Reverse(s.band)).or_default();
        slot.1 += 1;
        if s.churned_on.is_some() {
            slot.0 += 1;
        }
    }
    let by_band: Vec<BandRow> = bands
        .into_iter()
        .map(|(Reverse(band), (k, n))| BandRow {
            band: band.map_or_else(|| "no data".to_owned(), |b| b.as_str().to_owned()),
            churn: Rate::wilson(k, n),
        })
        .collect();

    let mut green_but_churned: Vec<GreenButChurned> = snapshots
        .iter()
        .filter(|s| s.band == Some(Band::Green))
        .filter_map(|s| {
            Some(GreenButChurned {
                account: s.account.clone(),
                on: s.on,
                score: s.score,
                churned_on: s.churned_on?,
            })
        })
        .collect();
    green_but_churned.sort_by(|a, b| (a.on, &a.account).cmp(&(b.on, &b.account)));

    HealthBacktest {
        dates,
        snapshots: snapshots.len() as u64,
        churned: snapshots.iter().filter(|s| s.churned_on.is_some()).count() as u64,
        scored: scored.len() as u64,
        auc: auc_all,
        auc_low: pick(0.025),
        auc_high: pick(0.975),
        top_decile_lift: top_decile.rate.zip(base.rate).and_then(|(t, b)| ratio(t, b)),
        top_decile,
        base,
        by_band,
        green_but_churned,
        roc: thin(roc_curve(&pairs), ROC_POINTS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs_by_hand() {
        // Churners score 10 and 40; stayers 20, 40, 50. Pairs where the churner
        // is lower: 10<20, 10<40, 10<50, 40<50 = 4, plus the 40–40 tie = 0.5;
        // of 2·3 = 6 pairs.
        let pairs = [(10.0, true), (40.0, true), (20.0, false), (40.0, false), (50.0, false)];
        assert!((auc(&pairs).unwrap() - 4.5 / 6.0).abs() < 1e-12);
        assert_eq!(auc(&[(1.0, true), (2.0, true)]), None, "no stayer");
        assert_eq!(auc(&[(1.0, true), (2.0, false)]), Some(1.0));
        assert_eq!(auc(&[(2.0, true), (1.0, false)]), Some(0.0));
    }

    /// The trapezoid area under the curve.
    fn area(curve: &[RocPoint]) -> f64 {
        curve
            .windows(2)
            .map(|w| {
                (w[1].false_positive_rate - w[0].false_positive_rate)
                    * (w[1].true_positive_rate + w[0].true_positive_rate)
                    / 2.0
            })
            .sum()
    }

    #[test]
    fn the_roc_curve_walks_the_scores_and_its_area_is_the_auc() {
        let pairs = [(10.0, true), (40.0, true), (20.0, false), (40.0, false), (50.0, false)];
        let curve = roc_curve(&pairs);
        let points: Vec<(Option<f64>, f64, f64)> =
            curve.iter().map(|p| (p.threshold, p.false_positive_rate, p.true_positive_rate)).collect();
        let third = 1.0 / 3.0;
        assert_eq!(
            points,
            [
                (None, 0.0, 0.0),
                (Some(10.0), 0.0, 0.5),
                (Some(20.0), third, 0.5),
                (Some(40.0), 2.0 * third, 1.0),
                (Some(50.0), 1.0, 1.0)
            ]
        );
        assert!((area(&curve) - auc(&pairs).unwrap()).abs() < 1e-12);
        assert!(roc_curve(&[(1.0, true)]).is_empty(), "no stayer, no curve");

        // Many scores with ties: the area is still the AUC, and thinning keeps both ends.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let many: Vec<(f64, bool)> =
            (0..5000).map(|_| (f64::from(rng.random_range(0..400u32)), rng.random_bool(0.2))).collect();
        let curve = roc_curve(&many);
        assert!((area(&curve) - auc(&many).unwrap()).abs() < 1e-9);
        let thinned = thin(curve.clone(), ROC_POINTS);
        assert_eq!(thinned.len(), ROC_POINTS);
        assert_eq!((thinned[0], thinned[ROC_POINTS - 1]), (curve[0], curve[curve.len() - 1]));
    }

    #[test]
    fn wilson_matches_the_textbook_interval() {
        // 8 of 10: 0.4902 .. 0.9433 (Wilson 1927; as tabulated by Newcombe 1998).
        let r = Rate::wilson(8, 10);
        assert!((r.low.unwrap() - 0.4902).abs() < 1e-4 && (r.high.unwrap() - 0.9433).abs() < 1e-4, "{r:?}");
        assert_eq!(Rate::wilson(0, 0).rate, None);
        let zero = Rate::wilson(0, 20);
        assert_eq!(zero.low, Some(0.0));
    }

    fn snap(account: &str, on: &str, score: f64, band: &str, churned: Option<&str>) -> Snapshot {
        Snapshot {
            account: ExternalId::parse(account).unwrap(),
            on: on.parse().unwrap(),
            score: Some(score),
            band: Some(band.parse().unwrap()),
            churned_on: churned.map(|c| c.parse().unwrap()),
        }
    }

    /// Ten snapshots, by hand: the lowest-scoring one (the top decile) churned,
    /// as did one green account.
    #[test]
    fn calibration_lift_and_the_green_that_churned() {
        let mut s = vec![snap("a", "2025-01-31", 10.0, "red", Some("2025-03-01"))];
        for (i, score) in [20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0].iter().enumerate() {
            s.push(snap(
                &format!("s{i}"),
                "2025-01-31",
                *score,
                if *score < 40.0 { "yellow" } else { "green" },
                None,
            ));
        }
        s.push(snap("g", "2025-01-31", 90.0, "green", Some("2025-04-15")));
        s.push(snap("h", "2025-02-28", 95.0, "green", None));
        let r = report(&s);
        assert_eq!((r.snapshots, r.churned, r.scored), (10, 2, 10));
        assert_eq!((r.top_decile.k, r.top_decile.n), (1, 1));
        assert_eq!(r.base.rate, Some(0.2));
        assert_eq!(r.top_decile_lift, Some(5.0));
        let bands: Vec<(&str, u64, u64)> =
            r.by_band.iter().map(|b| (b.band.as_str(), b.churn.k, b.churn.n)).collect();
        assert_eq!(bands, [("green", 1, 7), ("yellow", 0, 2), ("red", 1, 1)]);
        assert_eq!(r.green_but_churned.len(), 1);
        assert_eq!(r.green_but_churned[0].account.as_str(), "g");
        // Churners 10 and 90 against 8 stayers: 10 is below all 8, 90 below only 95.
        assert!((r.auc.unwrap() - 9.0 / 16.0).abs() < 1e-12);
        let (lo, hi) = (r.auc_low.unwrap(), r.auc_high.unwrap());
        assert!(lo <= r.auc.unwrap() && r.auc.unwrap() <= hi, "{lo} .. {hi}");
        assert_eq!(report(&s), r, "deterministic");
    }
}
