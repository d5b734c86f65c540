//! From `journey.toml` text to a checked [`Journey`], collecting every
//! diagnostic rather than stopping at the first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use toml::Spanned;

use crate::catalog::{
    BUILTIN_FAMILIES, BUILTIN_METRICS, DETECTORS, ENTRY_TRIGGERS, MAP_ROWS, MetricType, SETTINGS, SEVERITIES,
    TOUCH_MODELS, TOUCHPOINT_KINDS,
};
use crate::diagnostic::{Diagnostic, SourceMap};
use crate::expr::{Expr, Scope, suggest};
use crate::model::*;
use crate::schema::*;

mod plays;

struct Checker<'a> {
    map: SourceMap<'a>,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diagnostics.push(self.map.at(span, message));
    }

    /// Where the text of a TOML string starts, if `value` is written there
    /// verbatim (no escapes), so expression offsets map one to one.
    fn content_start(&self, text: &Text) -> Option<usize> {
        let span = text.span();
        let raw = self.map.src().get(span.clone())?;
        let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") { 3 } else { 1 };
        let inner = raw.get(quote..raw.len().checked_sub(quote)?)?;
        (inner == text.get_ref().as_str()).then_some(span.start + quote)
    }

    fn compile(
        &mut self,
        scope: &Scope,
        names: &[&str],
        text: &Text,
        expect: Option<MetricType>,
        what: &str,
    ) -> Option<(Expr, Option<MetricType>)> {
        match scope.compile(text.get_ref(), expect, names) {
            Ok(ok) => Some(ok),
            Err(errors) => {
                let base = self.content_start(text);
                for (range, message) in errors {
                    let span = match base {
                        Some(b) => b + range.start..b + range.end.max(range.start + 1),
                        None => text.span(),
                    };
                    self.error(span, format!("{what}: {message}"));
                }
                None
            }
        }
    }

    fn check_id(&mut self, id: &Text, what: &str) {
        let s = id.get_ref();
        let ok = !s.is_empty()
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            self.error(
                id.span(),
                format!("{what} id `{s}` must be snake_case (a-z, 0-9, _), starting with a letter"),
            );
        }
    }

    fn unique<'t>(&mut self, ids: impl Iterator<Item = &'t Text>, what: &str) {
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        for id in ids {
            if let Some(first) = seen.get(id.get_ref().as_str()) {
                let line = self.map.at(first.clone(), "").line;
                self.error(
                    id.span(),
                    format!("duplicate {what} id `{}` (first defined on line {line})", id.get_ref()),
                );
            } else {
                seen.insert(id.get_ref(), id.span());
            }
        }
    }

    fn known(&mut self, name: &Text, known: &[&str], what: &str) -> bool {
        if known.contains(&name.get_ref().as_str()) {
            return true;
        }
        let message = match suggest(name.get_ref(), known) {
            Some(s) => format!("unknown {what} `{}` (did you mean `{s}`?)", name.get_ref()),
            None if known.len() <= 8 => {
                format!("unknown {what} `{}`; expected one of {}", name.get_ref(), known.join(", "))
            }
            None => format!("unknown {what} `{}`", name.get_ref()),
        };
        self.error(name.span(), message);
        false
    }

    fn days(&mut self, value: &Option<Spanned<i64>>, what: &str) -> Option<u32> {
        let v = value.as_ref()?;
        match u32::try_from(*v.get_ref()) {
            Ok(d) => Some(d),
            Err(_) => {
                self.error(v.span(), format!("{what} must be a whole number of days, 0 or more"));
                None
            }
        }
    }

    fn months(&mut self, months: &Spanned<(i64, i64)>) -> Option<(u8, u8)> {
        let (a, b) = *months.get_ref();
        if !(1..=12).contains(&a) || !(1..=12).contains(&b) || a > b {
            self.error(
                months.span(),
                format!("months [{a}, {b}] must be a range within 1..12, first <= last"),
            );
            return None;
        }
        Some((a as u8, b as u8))
    }
}

/// Parses and checks a journey. `file` names the source in diagnostics.
pub fn check(file: &str, src: &str) -> Result<Journey, Vec<Diagnostic>> {
    let mut c = Checker { map: SourceMap::new(file, src), diagnostics: Vec::new() };
    let raw: RawJourney = match toml::from_str(src) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim_end().replace('\n', "; ");
            return Err(vec![c.map.at(span, message)]);
        }
    };
    let journey = check_raw(&mut c, raw);
    c.diagnostics.sort_by_key(|d| (d.line, d.column));
    match journey {
        Some(j) if c.diagnostics.is_empty() => Ok(j),
        _ => Err(c.diagnostics),
    }
}

/// The names a journey's expressions, links and settings may use.
struct Names<'a> {
    /// Every metric (built-in, family member, the journey's own), by name.
    metrics: &'a [&'a str],
    /// The settings (and detector parameters).
    settings: &'a [&'a str],
    /// Touchpoint kinds, Keel's and the journey's.
    touchpoints: &'a [&'a str],
    /// Ids the journey declares.
    segments: &'a [&'a str],
    stages: &'a [&'a str],
    moments: &'a [&'a str],
}

fn check_raw(c: &mut Checker<'_>, raw: RawJourney) -> Option<Journey> {
    let (touchpoint_kinds, mut metric_types) = touchpoint_vocabulary(c, &raw);
    let settings = settings(c, &raw);
    let metrics = user_metrics(c, &raw, &mut metric_types);
    let scope = Scope::new(&metric_types);
    let metric_names: Vec<String> = metric_types.keys().cloned().collect();
    let names: Vec<&str> = metric_names.iter().map(String::as_str).collect();
    let setting_names: Vec<&str> = SETTINGS.iter().map(|(k, _)| *k).collect();
    let tp_names: Vec<&str> = touchpoint_kinds.iter().map(String::as_str).collect();
    let segment_ids: Vec<&str> = raw.segments.iter().map(|s| s.id.get_ref().as_str()).collect();
    let stage_ids: Vec<&str> = raw.stages.iter().map(|s| s.id.get_ref().as_str()).collect();
    let moment_ids: Vec<&str> = raw.moments.iter().map(|m| m.id.get_ref().as_str()).collect();
    let known = Names {
        metrics: &names,
        settings: &setting_names,
        touchpoints: &tp_names,
        segments: &segment_ids,
        stages: &stage_ids,
        moments: &moment_ids,
    };

    let first_value = c
        .compile(&scope, &names, &raw.first_value.when, Some(MetricType::Bool), "first_value.when")
        .map(|(e, _)| e);
    let segments = segments(c, &raw, &scope, &known);
    let stages = stages(c, &raw, &scope, &known);
    let moments = moments(c, &raw, &scope, &known);
    let health = health(c, &raw, &known);
    let map = map(c, &raw, &known);
    let checked = owners_and_plays(c, &raw, &metric_types, &known);

    if raw.journey.core_features.is_empty() {
        c.error(0..0, "name the product's core features: [journey] core_features = [\"event_name\", …]");
    }
    let renewal_window_days = c.days(&raw.journey.renewal_window_days, "renewal_window_days").unwrap_or(90);
    Some(Journey {
        name: raw.journey.name,
        renewal_window_days,
        first_value: first_value?,
        settings,
        segments,
        metrics,
        metric_types,
        stages,
        moments,
        health,
        map,
        touchpoint_kinds,
        core_features: raw.journey.core_features.iter().map(|f| f.get_ref().clone()).collect(),
        owners: checked.owners,
        governance: checked.governance,
        plays: checked.plays,
        version: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(c.map.src().as_bytes())),
    })
}

/// Keel's touchpoint kinds and the journey's, and the metric types they
/// bring (with the built-in metrics').
fn touchpoint_vocabulary(
    c: &mut Checker<'_>,
    raw: &RawJourney,
) -> (Vec<String>, BTreeMap<String, MetricType>) {
    // Touchpoint kinds and the metric names they bring.
    let mut touchpoint_kinds: Vec<String> = TOUCHPOINT_KINDS.iter().map(|k| (*k).to_owned()).collect();
    for kind in &raw.journey.touchpoint_kinds {
        c.check_id(kind, "touchpoint kind");
        if touchpoint_kinds.contains(kind.get_ref()) {
            c.error(kind.span(), format!("touchpoint kind `{}` is already known", kind.get_ref()));
        } else {
            touchpoint_kinds.push(kind.get_ref().clone());
        }
    }
    let mut metric_types: BTreeMap<String, MetricType> =
        BUILTIN_METRICS.iter().map(|m| (m.name.to_owned(), m.ty)).collect();
    for family in BUILTIN_FAMILIES {
        for kind in &touchpoint_kinds {
            metric_types.insert(format!("{}{kind}", family.name), family.ty);
        }
    }

    (touchpoint_kinds, metric_types)
}

/// The settings, defaults overridden by `[settings]`.
fn settings(c: &mut Checker<'_>, raw: &RawJourney) -> BTreeMap<String, f64> {
    // Settings.
    let mut settings: BTreeMap<String, f64> = SETTINGS.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    let setting_names: Vec<&str> = SETTINGS.iter().map(|(k, _)| *k).collect();
    for (name, value) in &raw.settings {
        if setting_names.contains(&name.as_str()) {
            settings.insert(name.clone(), *value.get_ref());
        } else {
            let message = match suggest(name, &setting_names) {
                Some(s) => format!("unknown setting `{name}` (did you mean `{s}`?)"),
                None => format!("unknown setting `{name}`; known: {}", setting_names.join(", ")),
            };
            c.error(value.span(), message);
        }
    }

    settings
}

/// The journey's own metrics; each adds its type to `metric_types`.
fn user_metrics(
    c: &mut Checker<'_>,
    raw: &RawJourney,
    metric_types: &mut BTreeMap<String, MetricType>,
) -> Vec<UserMetric> {
    // User metrics: counting ones first (expressions may use them), then expressions.
    let mut metrics = Vec::new();
    for (name, m) in &raw.metrics {
        c.check_id(name, "metric");
        if metric_types.contains_key(name.get_ref()) {
            c.error(name.span(), format!("metric `{}` is built in; choose another name", name.get_ref()));
            continue;
        }
        let kinds = [m.count.is_some(), m.unique_users.is_some(), m.expr.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            c.error(
                name.span(),
                format!("metric `{}` needs exactly one of `count`, `unique_users`, `expr`", name.get_ref()),
            );
            continue;
        }
        let window = match &m.window_days {
            None => Window::Days(28),
            Some(w) => match w.get_ref() {
                RawWindow::Days(d) if (1..=3650).contains(d) => Window::Days(*d as u32),
                RawWindow::Named(s) if s == "contract" => Window::Contract,
                _ => {
                    c.error(w.span(), "window_days must be 1..3650 or \"contract\"");
                    continue;
                }
            },
        };
        let events = |list: &Spanned<Vec<Text>>, c: &mut Checker<'_>| -> Vec<String> {
            if list.get_ref().is_empty() {
                c.error(list.span(), "name at least one event");
            }
            list.get_ref().iter().map(|e| e.get_ref().clone()).collect()
        };
        let def = match (&m.count, &m.unique_users) {
            (Some(list), _) => Some(MetricDef::Count { events: events(list, c), window }),
            (None, Some(list)) => Some(MetricDef::UniqueUsers { events: events(list, c), window }),
            (None, None) => None,
        };
        if let Some(def) = def {
            metrics.push(UserMetric {
                name: name.get_ref().clone(),
                description: m.description.clone(),
                def,
                ty: MetricType::Int,
            });
            metric_types.insert(name.get_ref().clone(), MetricType::Int);
        }
    }
    {
        let scope = Scope::new(metric_types);
        let names: Vec<String> = metric_types.keys().cloned().collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut typed = Vec::new();
        for (name, m) in &raw.metrics {
            if let (Some(text), false) = (&m.expr, metric_types.contains_key(name.get_ref()))
                && let Some((expr, ty)) =
                    c.compile(&scope, &names, text, None, &format!("metric `{}`", name.get_ref()))
            {
                match ty {
                    Some(ty) => typed.push((name, m, expr, ty)),
                    None => c.error(
                        text.span(),
                        format!("metric `{}` must be an int, double or bool", name.get_ref()),
                    ),
                }
            }
        }
        for (name, m, expr, ty) in typed {
            metrics.push(UserMetric {
                name: name.get_ref().clone(),
                description: m.description.clone(),
                def: MetricDef::Expr(expr),
                ty,
            });
            metric_types.insert(name.get_ref().clone(), ty);
        }
    }
    metrics
}

fn segments(c: &mut Checker<'_>, raw: &RawJourney, scope: &Scope, known: &Names<'_>) -> Vec<Segment> {
    let (names, setting_names, bool_ty) = (known.metrics, known.settings, Some(MetricType::Bool));
    // Segments.
    c.unique(raw.segments.iter().map(|s| &s.id), "segment");
    let mut segments = Vec::new();
    for s in &raw.segments {
        c.check_id(&s.id, "segment");
        let when = c.compile(scope, names, &s.when, bool_ty, &format!("segment `{}`", s.id.get_ref()));
        let touch = match s.touch.get_ref().as_str() {
            "high_touch" => Some(Touch::HighTouch),
            "tech_touch" => Some(Touch::TechTouch),
            "hybrid" => Some(Touch::Hybrid),
            _ => {
                c.known(&s.touch, TOUCH_MODELS, "touch model");
                None
            }
        };
        let mut overrides = BTreeMap::new();
        for (k, v) in &s.overrides {
            if c.known(k, setting_names, "setting") {
                overrides.insert(k.get_ref().clone(), *v.get_ref());
            }
        }
        if let (Some((when, _)), Some(touch)) = (when, touch) {
            segments.push(Segment { id: s.id.get_ref().clone(), when, touch, overrides });
        }
    }
    if raw.segments.is_empty() {
        c.error(0..0, "define at least one segment (the last one may be `when = \"true\"`)");
    }

    segments
}

fn stages(c: &mut Checker<'_>, raw: &RawJourney, scope: &Scope, known: &Names<'_>) -> Vec<Stage> {
    let (names, bool_ty) = (known.metrics, Some(MetricType::Bool));
    // Stages.
    c.unique(raw.stages.iter().map(|s| &s.id), "stage");
    if raw.stages.is_empty() {
        c.error(0..0, "define at least one stage");
    }
    let mut stages = Vec::new();
    for (i, s) in raw.stages.iter().enumerate() {
        c.check_id(&s.id, "stage");
        let what = format!("stage `{}`", s.id.get_ref());
        let entry = match s.entry.get_ref().as_str() {
            "contract_start" => Some(Entry::ContractStart),
            "previous_exit" if i == 0 => {
                c.error(s.entry.span(), "the first stage has no previous stage; use \"contract_start\"");
                None
            }
            "previous_exit" => Some(Entry::PreviousExit),
            "renewal_window" => Some(Entry::RenewalWindow),
            other if ENTRY_TRIGGERS.iter().any(|t| strsim::levenshtein(t, other) <= 2) => {
                c.known(&s.entry, ENTRY_TRIGGERS, "entry trigger");
                None
            }
            _ => c
                .compile(scope, names, &s.entry, bool_ty, &format!("{what} entry"))
                .map(|(e, _)| Entry::When(e)),
        };
        let exit = c.compile(scope, names, &s.exit, bool_ty, &format!("{what} exit"));
        let watch_ok = c.known(&s.watch, names, "metric");
        let min_dwell = c.days(&s.min_dwell_days, "min_dwell_days").unwrap_or(0);
        let target = c.days(&s.target_days, "target_days");
        if let (Some(entry), Some((exit, _)), true) = (entry, exit, watch_ok) {
            stages.push(Stage {
                id: s.id.get_ref().clone(),
                name: s.name.clone().unwrap_or_else(|| s.id.get_ref().replace('_', " ")),
                entry,
                exit,
                min_dwell_days: min_dwell,
                watch: s.watch.get_ref().clone(),
                owner: s.owner.get_ref().clone(),
                target_days: target,
            });
        }
    }

    stages
}

fn moments(c: &mut Checker<'_>, raw: &RawJourney, scope: &Scope, known: &Names<'_>) -> Vec<Moment> {
    let (names, setting_names, bool_ty) = (known.metrics, known.settings, Some(MetricType::Bool));
    // Moments.
    c.unique(raw.moments.iter().map(|m| &m.id), "moment");
    let detector_names: Vec<&str> = DETECTORS.iter().map(|d| d.name).collect();
    let mut moments = Vec::new();
    for m in &raw.moments {
        c.check_id(&m.id, "moment");
        let what = format!("moment `{}`", m.id.get_ref());
        let detection = match (&m.detector, &m.when) {
            (Some(d), None) => {
                let mut params = BTreeMap::new();
                for (k, v) in &m.params {
                    if c.known(k, setting_names, "detector parameter") {
                        params.insert(k.get_ref().clone(), *v.get_ref());
                    }
                }
                c.known(d, &detector_names, "detector")
                    .then(|| Detection::Detector { name: d.get_ref().clone(), params })
            }
            (None, Some(w)) => c.compile(scope, names, w, bool_ty, &what).map(|(e, _)| Detection::When(e)),
            _ => {
                c.error(m.id.span(), format!("{what} needs exactly one of `detector` and `when`"));
                None
            }
        };
        let severity = match m.severity.get_ref().as_str() {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => {
                c.known(&m.severity, SEVERITIES, "severity");
                None
            }
        };
        let cell = match &m.cell {
            Some(cell) => {
                let month = *cell.get_ref().month.get_ref();
                if !(1..=12).contains(&month) {
                    c.error(cell.get_ref().month.span(), format!("month {month} is outside 1..12"));
                }
                c.known(&cell.get_ref().row, MAP_ROWS, "map row");
                Some((month.clamp(1, 12) as u8, cell.get_ref().row.get_ref().clone()))
            }
            None => None,
        };
        if let (Some(detection), Some(severity)) = (detection, severity) {
            moments.push(Moment {
                id: m.id.get_ref().clone(),
                detection,
                owner: m.owner.get_ref().clone(),
                severity,
                play: m.play.as_ref().map(|p| p.get_ref().clone()),
                cell,
            });
        }
    }

    moments
}

fn health(c: &mut Checker<'_>, raw: &RawJourney, known: &Names<'_>) -> HealthModel {
    let (names, segment_ids) = (known.metrics, known.segments);
    // Health.
    let h = &raw.health;
    let bands = h.bands.get_ref();
    if !(0.0 < bands.red && bands.red < bands.yellow && bands.yellow <= 100.0) {
        c.error(
            h.bands.span(),
            format!(
                "bands need 0 < red < yellow <= 100 (got red = {}, yellow = {})",
                bands.red, bands.yellow
            ),
        );
    }
    let min_coverage = h.min_coverage.as_ref().map_or(0.5, |m| *m.get_ref());
    if let Some(m) = &h.min_coverage
        && !(0.0..=1.0).contains(m.get_ref())
    {
        c.error(m.span(), "min_coverage is a share of the weight, between 0 and 1");
    }
    c.unique(h.components.iter().map(|k| &k.id), "health component");
    let mut components = Vec::new();
    for k in &h.components {
        c.check_id(&k.id, "health component");
        let metric_ok = c.known(&k.metric, names, "metric");
        if *k.weight.get_ref() < 0.0 {
            c.error(k.weight.span(), "weights are 0 or more");
        }
        let curve = k.curve.get_ref();
        if curve.len() < 2 {
            c.error(k.curve.span(), "a curve needs at least two (value, score) points");
        } else if curve.windows(2).any(|w| w[0].0 >= w[1].0) {
            c.error(k.curve.span(), "curve points must be in increasing order of value");
        } else if curve.iter().any(|(_, s)| !(0.0..=100.0).contains(s)) {
            c.error(k.curve.span(), "curve scores are between 0 and 100");
        }
        if metric_ok {
            components.push(Component {
                id: k.id.get_ref().clone(),
                metric: k.metric.get_ref().clone(),
                weight: *k.weight.get_ref(),
                curve: curve.clone(),
            });
        }
    }
    if h.components.iter().map(|k| *k.weight.get_ref()).sum::<f64>() <= 0.0 {
        c.error(h.bands.span(), "the health components' weights add up to nothing");
    }
    let component_ids: Vec<&str> = h.components.iter().map(|k| k.id.get_ref().as_str()).collect();
    let mut segment_weights = BTreeMap::new();
    for (segment, weights) in &h.segment_weights {
        c.known(segment, segment_ids, "segment");
        let mut w = BTreeMap::new();
        for (component, weight) in weights {
            if c.known(component, &component_ids, "health component") {
                w.insert(component.get_ref().clone(), *weight.get_ref());
            }
        }
        segment_weights.insert(segment.get_ref().clone(), w);
    }

    HealthModel { red: bands.red, yellow: bands.yellow, min_coverage, components, segment_weights }
}

fn map(c: &mut Checker<'_>, raw: &RawJourney, known: &Names<'_>) -> JourneyMap {
    let (names, tp_names, stage_ids, moment_ids) =
        (known.metrics, known.touchpoints, known.stages, known.moments);
    // Map.
    c.unique(raw.map.phases.iter().map(|p| &p.id), "phase");
    let mut phases: Vec<Phase> = Vec::new();
    let mut phase_spans = Vec::new();
    for p in &raw.map.phases {
        c.check_id(&p.id, "phase");
        if let Some(months) = c.months(&p.months) {
            phases.push(Phase { id: p.id.get_ref().clone(), months });
            phase_spans.push(p.months.span());
        }
    }
    for i in 0..phases.len() {
        for j in 0..i {
            let (a, b) = (&phases[j], &phases[i]);
            if a.months.0 <= b.months.1 && b.months.0 <= a.months.1 {
                let message = format!(
                    "phase `{}` (months {}-{}) overlaps phase `{}` (months {}-{})",
                    b.id, b.months.0, b.months.1, a.id, a.months.0, a.months.1
                );
                c.error(phase_spans[i].clone(), message);
            }
        }
    }
    let mut cells = Vec::new();
    let mut covered: BTreeMap<&str, BTreeSet<u8>> = BTreeMap::new();
    for cell in &raw.map.cells {
        let row_ok = c.known(&cell.row, MAP_ROWS, "map row");
        let months = c.months(&cell.months);
        let l = &cell.links;
        for s in &l.stages {
            c.known(s, stage_ids, "stage");
        }
        for m in &l.moments {
            c.known(m, moment_ids, "moment");
        }
        for t in &l.touchpoints {
            c.known(t, tp_names, "touchpoint kind");
        }
        for m in &l.metrics {
            c.known(m, names, "metric");
        }
        if let (true, Some(months)) = (row_ok, months) {
            let seen = covered.entry(cell.row.get_ref().as_str()).or_default();
            for month in months.0..=months.1 {
                if !seen.insert(month) {
                    c.error(
                        cell.months.span(),
                        format!("row `{}` already has a cell for month {month}", cell.row.get_ref()),
                    );
                    break;
                }
            }
            let texts = |v: &Vec<Text>| v.iter().map(|t| t.get_ref().clone()).collect();
            cells.push(Cell {
                row: cell.row.get_ref().clone(),
                months,
                text: cell.text.clone(),
                links: Links {
                    stages: texts(&l.stages),
                    moments: texts(&l.moments),
                    touchpoints: texts(&l.touchpoints),
                    plays: texts(&l.plays),
                    metrics: texts(&l.metrics),
                },
            });
        }
    }

    JourneyMap { phases, cells }
}

/// Owners, plays and governance; then the moments' and the map's play names.
fn owners_and_plays(
    c: &mut Checker<'_>,
    raw: &RawJourney,
    metric_types: &BTreeMap<String, MetricType>,
    known: &Names<'_>,
) -> plays::Checked {
    let (names, segment_ids, tp_names) = (known.metrics, known.segments, known.touchpoints);
    // Owners, plays and governance.
    let roles = plays::roles(&raw.owners);
    let role_names: Vec<&str> = roles.iter().map(String::as_str).collect();
    for owner in raw.stages.iter().map(|s| &s.owner).chain(raw.moments.iter().map(|m| &m.owner)) {
        plays::role_known(c, owner, &role_names);
    }
    let known = plays::Known {
        metrics: names,
        stages: raw
            .stages
            .iter()
            .map(|s| (s.id.get_ref().as_str(), s.target_days.is_some(), s.owner.get_ref().as_str()))
            .collect(),
        moments: raw.moments.iter().map(|m| (m.id.get_ref().as_str(), m.owner.get_ref().as_str())).collect(),
        segments: segment_ids,
        touchpoints: tp_names,
    };
    let checked = plays::check(c, &raw.owners, raw.governance.as_ref(), &raw.plays, metric_types, &known);
    let play_ids: Vec<&str> = raw.plays.iter().map(|p| p.id.get_ref().as_str()).collect();
    // A journey without plays (written before Keel ran them) keeps its
    // moments' `play` names (and its map's play links) as labels; once it defines plays, every name must resolve.
    for m in raw.moments.iter().filter(|_| !raw.plays.is_empty()) {
        let Some(play) = &m.play else { continue };
        if !c.known(play, &play_ids, "play") {
            continue;
        }
        let fired_by = checked.plays.iter().find(|p| &p.id == play.get_ref()).map(|p| &p.trigger);
        if let Some(trigger) = fired_by
            && !matches!(trigger, Trigger::Moment(id) if id == m.id.get_ref())
        {
            c.error(
                play.span(),
                format!(
                    "play `{}` is triggered by {}, not by moment `{}`; set its trigger to moment = \"{}\"",
                    play.get_ref(),
                    trigger.describe(),
                    m.id.get_ref(),
                    m.id.get_ref()
                ),
            );
        }
    }
    // The same for the map's play links.
    for cell in raw.map.cells.iter().filter(|_| !raw.plays.is_empty()) {
        for p in &cell.links.plays {
            c.known(p, &play_ids, "play");
        }
    }

    checked
}
