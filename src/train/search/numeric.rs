//! Proposals for numeric parameters that need no model: classical one-dimensional steps along
//! each number from the best set tried so far (a search mixes them with the model's), and the
//! two baselines every search figure stands beside (uniform random, evenly spaced sections).
//!
//! Nothing here knows a task: a parameter qualifies when its value is an int or a float, and
//! the only knowledge used is the scores of the tried points (higher is better) and, where the
//! task gives them, the parameter's bounds.

use super::candidate::Source;
use super::history::History;
use crate::graph::Value;
use indexmap::IndexMap;
use rand::{Rng, SeedableRng};

/// A parameter the numeric proposals can move.
#[derive(Clone, Debug, PartialEq)]
pub struct NumericParam {
    pub name: String,
    pub integer: bool,
    pub bounds: Option<(f64, f64)>,
}

type Values = IndexMap<String, Value>;

/// The int and float parameters of `values` (bools are not numbers here).
pub fn numeric_params(
    values: &Values,
    bounds: &dyn Fn(&str) -> Option<(f64, f64)>,
) -> Vec<NumericParam> {
    values
        .iter()
        .filter_map(|(name, v)| match v {
            Value::Int(_) => {
                Some(NumericParam { name: name.clone(), integer: true, bounds: bounds(name) })
            }
            Value::Float(_) => {
                Some(NumericParam { name: name.clone(), integer: false, bounds: bounds(name) })
            }
            _ => None,
        })
        .collect()
}

fn with_value(base: &Values, p: &NumericParam, x: f64) -> Option<Values> {
    let x = match p.bounds {
        Some((lo, hi)) => x.clamp(lo.min(hi), hi.max(lo)),
        None => x,
    };
    if !x.is_finite() {
        return None;
    }
    let v = if p.integer { Value::Int(x.round() as i64) } else { Value::Float(x) };
    let mut out = base.clone();
    out.insert(p.name.clone(), v);
    Some(out)
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v {
        Some(Value::Int(i)) => Some(*i as f64),
        Some(Value::Float(f)) => Some(*f),
        _ => None,
    }
}

/// The scored points on the line through `best` along `p` (every other value equal to the
/// best's), sorted by the value of `p`; failures (non-finite scores) are left out.
fn line(history: &History, best: &Values, p: &NumericParam) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = history
        .iter()
        .filter(|t| t.score.is_finite())
        .filter(|t| best.iter().all(|(k, v)| k == &p.name || t.values.get(k) == Some(v)))
        .filter_map(|t| number(t.values.get(&p.name)).map(|x| (x, t.score)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts.dedup_by(|a, b| a.0 == b.0);
    pts
}

const GOLDEN: f64 = 0.381_966_011_250_105_1; // 2 − φ

/// Where lines through the points on either side of the best meet: for an error that falls
/// linearly to zero at the optimum (a V), this is the secant step, exact on a V. With one
/// point on the far side, that side's slope is taken as the mirror of the near side's.
fn v_fits(pts: &[(f64, f64)], b: usize) -> Vec<f64> {
    let (xb, sb) = pts[b];
    let mut out = Vec::new();
    let slope = |p: (f64, f64), q: (f64, f64)| (q.1 - p.1) / (q.0 - p.0);
    // optimum to the right of b: b climbs from the left, the right side falls
    if b >= 1 && b + 1 < pts.len() {
        let m = slope(pts[b - 1], pts[b]);
        if m > 0.0 {
            let (xr, sr) = pts[b + 1];
            let mr = if b + 2 < pts.len() { slope(pts[b + 1], pts[b + 2]) } else { -m };
            if mr < 0.0 {
                let x = (sr - sb + m * xb - mr * xr) / (m - mr);
                if x > xb && x < xr {
                    out.push(x);
                }
            }
        }
        // optimum to the left of b: b falls towards the right, the left side climbs
        let m = slope(pts[b], pts[b + 1]);
        if m < 0.0 {
            let (xl, sl) = pts[b - 1];
            let ml = if b >= 2 { slope(pts[b - 2], pts[b - 1]) } else { -m };
            if ml > 0.0 {
                let x = (sb - sl + ml * xl - m * xb) / (ml - m);
                if x > xl && x < xb {
                    out.push(x);
                }
            }
        }
    }
    out
}

/// The vertex of the parabola through the best point and its neighbours, when it lies between them.
fn parabola(pts: &[(f64, f64)], b: usize) -> Option<f64> {
    if b == 0 || b + 1 >= pts.len() {
        return None;
    }
    let ((xl, sl), (xb, sb), (xr, sr)) = (pts[b - 1], pts[b], pts[b + 1]);
    let num = (xb - xl).powi(2) * (sb - sr) - (xb - xr).powi(2) * (sb - sl);
    let den = (xb - xl) * (sb - sr) - (xb - xr) * (sb - sl);
    if den == 0.0 {
        return None;
    }
    let x = xb - 0.5 * num / den;
    (x > xl && x < xr && x != xb).then_some(x)
}

/// Classical steps along `p` from the best point, most promising first.
fn line_proposals(pts: &[(f64, f64)], b: usize, p: &NumericParam) -> Vec<(f64, Source)> {
    let (xb, _) = pts[b];
    let left = b.checked_sub(1).map(|i| pts[i].0);
    let right = pts.get(b + 1).map(|q| q.0);
    let mut out: Vec<(f64, Source)> = Vec::new();
    match (left, right) {
        (Some(xl), Some(xr)) => {
            out.extend(v_fits(pts, b).into_iter().map(|x| (x, Source::Secant)));
            out.extend(parabola(pts, b).map(|x| (x, Source::Parabola)));
            let x =
                if xr - xb > xb - xl { xb + GOLDEN * (xr - xb) } else { xb - GOLDEN * (xb - xl) };
            out.push((x, Source::Bracket));
        }
        (Some(xn), None) | (None, Some(xn)) => {
            out.push((xb + 1.618 * (xb - xn), Source::Expand));
            out.push((xb + GOLDEN * (xn - xb), Source::Bracket));
            out.push((xb + 4.0 * (xb - xn), Source::Expand));
        }
        (None, None) => {
            // a near step each way, then a far one (kept in reserve for slots the model's
            // candidates leave free)
            let step = if p.integer {
                1.0f64.max((0.25 * xb.abs()).round())
            } else {
                1.0f64.max(0.25 * xb.abs())
            };
            for s in [step, -step, 4.0 * step, -4.0 * step] {
                out.push((xb + s, Source::Expand));
            }
        }
    }
    out
}

/// Classical proposals around the best set of `history`, most promising first, never a set
/// already tried; the parameters take turns leading by `step`.
pub fn proposals(history: &History, params: &[NumericParam], step: usize) -> Vec<(Values, Source)> {
    let Some(best) = history.best().map(|i| history.get(i).values.clone()) else {
        return Vec::new();
    };
    let n = params.len();
    let mut per_param: Vec<Vec<(Values, Source)>> = Vec::new();
    for j in 0..n {
        let p = &params[(step + j) % n];
        let pts = line(history, &best, p);
        let Some(xb) = number(best.get(&p.name)) else { continue };
        let Some(b) = pts.iter().position(|q| q.0 == xb) else { continue };
        let mut mine = Vec::new();
        for (x, source) in line_proposals(&pts, b, p) {
            if let Some(values) = with_value(&best, p, x) {
                mine.push((values, source));
            }
        }
        per_param.push(mine);
    }
    // interleave the parameters, so every number gets its best step before any gets a second
    let mut out: Vec<(Values, Source)> = Vec::new();
    let longest = per_param.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for mine in &per_param {
            if let Some((values, source)) = mine.get(i) {
                let key = super::history::key(values);
                if !history.contains(values)
                    && !out.iter().any(|(v, _)| super::history::key(v) == key)
                {
                    out.push((values.clone(), *source));
                }
            }
        }
    }
    out
}

/// Baseline: `k` sets with every numeric parameter drawn uniformly within its bounds (the other
/// parameters as in the best set). `Err` names a parameter without bounds.
pub fn random_sets(
    history: &History,
    base: &Values,
    params: &[NumericParam],
    k: usize,
    seed: u64,
) -> Result<Vec<Values>, String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let base =
        history.best().map(|i| history.get(i).values.clone()).unwrap_or_else(|| base.clone());
    let mut out: Vec<Values> = Vec::new();
    let mut attempts = 0;
    while out.len() < k && attempts < 100 * k {
        attempts += 1;
        let mut values = base.clone();
        for p in params {
            let (lo, hi) = p
                .bounds
                .ok_or_else(|| format!("parameter `{}` has no bounds for random search", p.name))?;
            let x = if p.integer {
                rng.gen_range(lo.round() as i64..=hi.round() as i64) as f64
            } else {
                rng.gen_range(lo..=hi)
            };
            values = with_value(&values, p, x).unwrap_or(values);
        }
        let key = super::history::key(&values);
        if !history.contains(&values) && !out.iter().any(|v| super::history::key(v) == key) {
            out.push(values);
        }
    }
    Ok(out)
}

/// Baseline: `k` points evenly spaced strictly inside the bracket around the best value of one
/// parameter (the neighbours of the best among the tried points, or the bounds where it has
/// none on a side), the K-point form of golden-section search. The parameters take turns by
/// `step`. `Err` names a parameter without bounds.
pub fn section_sets(
    history: &History,
    base: &Values,
    params: &[NumericParam],
    k: usize,
    step: usize,
) -> Result<Vec<Values>, String> {
    if params.is_empty() {
        return Ok(Vec::new());
    }
    let p = &params[step % params.len()];
    let (lo_b, hi_b) = p
        .bounds
        .ok_or_else(|| format!("parameter `{}` has no bounds for section search", p.name))?;
    let best =
        history.best().map(|i| history.get(i).values.clone()).unwrap_or_else(|| base.clone());
    let pts = line(history, &best, p);
    let xb = number(best.get(&p.name));
    let b = xb.and_then(|xb| pts.iter().position(|q| q.0 == xb));
    let (lo, hi) = match b {
        Some(b) => {
            (b.checked_sub(1).map_or(lo_b, |i| pts[i].0), pts.get(b + 1).map_or(hi_b, |q| q.0))
        }
        None => (lo_b, hi_b),
    };
    let mut out: Vec<Values> = Vec::new();
    for i in 0..k {
        let x = lo + (hi - lo) * (i + 1) as f64 / (k + 1) as f64;
        if let Some(values) = with_value(&best, p, x) {
            let key = super::history::key(&values);
            if !history.contains(&values) && !out.iter().any(|v| super::history::key(v) == key) {
                out.push(values);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::search::history::Tried;

    fn x_param() -> Vec<NumericParam> {
        vec![NumericParam { name: "x".into(), integer: false, bounds: Some((-10.0, 10.0)) }]
    }

    fn history_of(f: impl Fn(f64) -> f64, xs: &[f64]) -> History {
        let mut h = History::default();
        for &x in xs {
            h.add(Tried {
                values: [("x".to_string(), Value::Float(x))].into_iter().collect(),
                score: f(x),
                feedback: String::new(),
                output: None,
                success: false,
                step: 0,
                expansions: 0,
            });
        }
        h
    }

    fn xs(props: &[(Values, Source)]) -> Vec<(f64, Source)> {
        props.iter().map(|(v, s)| (number(v.get("x")).unwrap(), *s)).collect()
    }

    #[test]
    fn the_secant_step_is_exact_on_a_v() {
        // score = −|3x − 2.1|: optimum at 0.7
        let h = history_of(|x| -(3.0 * x - 2.1).abs(), &[-2.0, 0.0, 3.0]);
        let props = xs(&proposals(&h, &x_param(), 0));
        let secant: Vec<f64> =
            props.iter().filter(|p| p.1 == Source::Secant).map(|p| p.0).collect();
        assert!(secant.iter().any(|x| (x - 0.7).abs() < 1e-9), "{props:?}");
    }

    #[test]
    fn the_parabola_is_exact_on_a_parabola_and_a_bracket_step_is_always_offered() {
        let h = history_of(|x| -(x - 1.3) * (x - 1.3), &[-1.0, 1.0, 4.0]);
        let props = xs(&proposals(&h, &x_param(), 0));
        let vertex = props.iter().find(|p| p.1 == Source::Parabola).unwrap().0;
        assert!((vertex - 1.3).abs() < 1e-9);
        assert!(props.iter().any(|p| p.1 == Source::Bracket && p.0 > 1.0 && p.0 < 4.0));
    }

    #[test]
    fn one_point_expands_both_ways_and_an_edge_expands_outwards_within_bounds() {
        let h = history_of(|x| -x.abs(), &[4.0]);
        let props = xs(&proposals(&h, &x_param(), 0));
        assert_eq!(
            props,
            vec![
                (5.0, Source::Expand),
                (3.0, Source::Expand),
                (8.0, Source::Expand),
                (0.0, Source::Expand)
            ]
        );
        let h = history_of(|x| x, &[2.0, 8.0]); // best at the right edge
        let props = xs(&proposals(&h, &x_param(), 0));
        assert_eq!(props[0], (10.0, Source::Expand), "clamped to the bound");
    }

    #[test]
    fn integers_stay_integers_and_nothing_tried_is_proposed_again() {
        let p = vec![NumericParam { name: "x".into(), integer: true, bounds: None }];
        let mut h = History::default();
        for x in [0i64, 1, 2] {
            h.add(Tried {
                values: [("x".to_string(), Value::Int(x))].into_iter().collect(),
                score: -((x - 1) as f64).abs(),
                feedback: String::new(),
                output: None,
                success: false,
                step: 0,
                expansions: 0,
            });
        }
        for (v, _) in proposals(&h, &p, 0) {
            assert!(matches!(v["x"], Value::Int(_)));
            assert!(!h.contains(&v));
        }
    }

    #[test]
    fn baselines_stay_in_bounds_and_sections_shrink_around_the_best() {
        let h = history_of(|x| -(x - 2.5).abs(), &[0.0]);
        let base = h.get(0).values.clone();
        let r = random_sets(&h, &base, &x_param(), 6, 1).unwrap();
        assert_eq!(r.len(), 6);
        assert!(r.iter().all(|v| (-10.0..=10.0).contains(&number(v.get("x")).unwrap())));
        let s = section_sets(&h, &base, &x_param(), 3, 0).unwrap();
        let sx: Vec<f64> = s.iter().map(|v| number(v.get("x")).unwrap()).collect();
        assert_eq!(sx, vec![-5.0, 5.0], "the grid over the bounds, less the tried 0");
        let h = history_of(|x| -(x - 2.5).abs(), &[0.0, 2.0, 5.0]);
        let s = section_sets(&h, &h.get(0).values.clone(), &x_param(), 2, 0).unwrap();
        let sx: Vec<f64> = s.iter().map(|v| number(v.get("x")).unwrap()).collect();
        assert_eq!(
            sx,
            vec![5.0 / 3.0, 10.0 / 3.0],
            "evenly inside the bracket (0, 5) around the best 2"
        );
        let unbounded = vec![NumericParam { name: "x".into(), integer: false, bounds: None }];
        assert!(random_sets(&h, &base, &unbounded, 2, 0).unwrap_err().contains("no bounds"));
    }
}
