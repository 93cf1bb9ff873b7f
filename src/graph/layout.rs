//! A layered (Sugiyama-style) layout of a directed graph, so a run's report can draw its trace
//! graph without Graphviz: layers by longest path, long edges split by dummy points, crossings
//! reduced by barycenter sweeps, then x positions pulled toward neighbours under a minimum gap.
//!
//! Our own rather than a crate's: the pure-Rust candidate on crates.io (`layout-rs` 0.1.3)
//! sizes a label at a full font size per character (boxes twice the text's width), draws in a
//! fixed serif font, and its placer checks its invariants with `assert!` (a panic in a report);
//! trace graphs are small DAGs, for which these ~250 lines suffice.

/// Horizontal gap between neighbouring boxes, and vertical gap between layers.
const GAP_X: f64 = 24.0;
const GAP_Y: f64 = 44.0;
const MARGIN: f64 = 12.0;
/// Width reserved for the point where a long edge crosses a layer.
const DUMMY_W: f64 = 10.0;

/// Where everything goes. Coordinates are box centres; y grows downward.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub centers: Vec<(f64, f64)>,
    /// Per edge (in input order, edges naming a node past the end dropped): the points from the
    /// source's bottom to the target's top; empty for a self-loop.
    pub edges: Vec<Vec<(f64, f64)>>,
    pub width: f64,
    pub height: f64,
}

/// Lays out nodes of the given `(width, height)` with directed `edges` (source, target).
/// Edges that would close a cycle are laid out reversed; self-loops are not drawn.
pub fn layered(sizes: &[(f64, f64)], edges: &[(usize, usize)]) -> Layout {
    let n = sizes.len();
    let edges: Vec<(usize, usize)> =
        edges.iter().copied().filter(|&(a, b)| a < n && b < n).collect();
    // A topological order (Kahn); nodes on a cycle follow in index order, and an edge against
    // the order is laid out reversed.
    let order = topological_order(n, &edges);
    let mut rank = vec![0; n];
    for (i, &v) in order.iter().enumerate() {
        rank[v] = i;
    }
    let forward: Vec<(usize, usize)> =
        edges.iter().map(|&(a, b)| if rank[a] <= rank[b] { (a, b) } else { (b, a) }).collect();
    let mut preds = vec![Vec::new(); n];
    let mut succs = vec![Vec::new(); n];
    for &(a, b) in forward.iter().filter(|(a, b)| a != b) {
        preds[b].push(a);
        succs[a].push(b);
    }
    // Longest-path layers, then sources moved down to sit just above their first use.
    let mut layer = vec![0usize; n];
    for &v in &order {
        layer[v] = preds[v].iter().map(|&p| layer[p] + 1).max().unwrap_or(0);
    }
    for &v in order.iter().rev() {
        if preds[v].is_empty() {
            if let Some(first_use) = succs[v].iter().map(|&s| layer[s]).min() {
                layer[v] = first_use.saturating_sub(1).max(layer[v]);
            }
        }
    }
    // Chains of dummy points for edges that skip layers.
    let mut widths: Vec<f64> = sizes.iter().map(|s| s.0).collect();
    let mut node_layer = layer.clone();
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(forward.len());
    let mut up: Vec<Vec<usize>> = preds.iter().map(|_| Vec::new()).collect();
    let mut down: Vec<Vec<usize>> = up.clone();
    for &(a, b) in &forward {
        if a == b {
            chains.push(Vec::new());
            continue;
        }
        let mut chain = vec![a];
        for l in layer[a] + 1..layer[b] {
            widths.push(DUMMY_W);
            node_layer.push(l);
            up.push(Vec::new());
            down.push(Vec::new());
            chain.push(widths.len() - 1);
        }
        chain.push(b);
        for w in chain.windows(2) {
            down[w[0]].push(w[1]);
            up[w[1]].push(w[0]);
        }
        chains.push(chain);
    }
    let layers_n = node_layer.iter().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); layers_n];
    // First order: depth-first from the sources, which keeps chains together.
    let mut seen = vec![false; widths.len()];
    let mut stack: Vec<usize> = (0..n).filter(|&v| up[v].is_empty()).rev().collect();
    stack.extend((0..widths.len()).rev().filter(|&v| up[v].is_empty() && v >= n));
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut seen[v], true) {
            continue;
        }
        layers[node_layer[v]].push(v);
        stack.extend(down[v].iter().rev().filter(|&&s| !seen[s]));
    }
    for v in 0..widths.len() {
        if !seen[v] {
            layers[node_layer[v]].push(v);
        }
    }
    order_layers(&mut layers, &up, &down);
    let xs = place_x(&layers, &widths, &up, &down);
    // Layer heights and centres.
    let mut y_of_layer = Vec::with_capacity(layers_n);
    let mut y = MARGIN;
    for l in &layers {
        let h = l.iter().filter(|&&v| v < n).map(|&v| sizes[v].1).fold(8.0, f64::max);
        y_of_layer.push(y + h / 2.0);
        y += h + GAP_Y;
    }
    let height = y - GAP_Y + MARGIN;
    let width = (0..widths.len()).map(|v| xs[v] + widths[v] / 2.0).fold(0.0, f64::max) + MARGIN;
    let centers: Vec<(f64, f64)> = (0..n).map(|v| (xs[v], y_of_layer[node_layer[v]])).collect();
    let paths = edges
        .iter()
        .zip(&chains)
        .map(|(&(a, b), chain)| {
            if chain.is_empty() {
                return Vec::new();
            }
            let mut pts: Vec<(f64, f64)> = chain
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let cy = y_of_layer[node_layer[v]];
                    let half = if v < n { sizes[v].1 / 2.0 } else { 0.0 };
                    // Leave the first box at its bottom, enter the last at its top.
                    let y = if i == 0 {
                        cy + half
                    } else if i == chain.len() - 1 {
                        cy - half
                    } else {
                        cy
                    };
                    (xs[v], y)
                })
                .collect();
            if rank[a] > rank[b] {
                pts.reverse();
            }
            pts
        })
        .collect();
    Layout { centers, edges: paths, width, height }
}

fn topological_order(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    let mut out = vec![Vec::new(); n];
    for &(a, b) in edges.iter().filter(|(a, b)| a != b) {
        indegree[b] += 1;
        out[a].push(b);
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    while let Some(v) = ready.pop_first() {
        order.push(v);
        placed[v] = true;
        for &s in &out[v] {
            indegree[s] -= 1;
            if indegree[s] == 0 {
                ready.insert(s);
            }
        }
    }
    order.extend((0..n).filter(|&v| !placed[v]));
    order
}

/// Edge crossings between consecutive layers, for the current order.
fn crossings(layers: &[Vec<usize>], down: &[Vec<usize>], pos: &[usize]) -> usize {
    let mut total = 0;
    for l in layers {
        let segs: Vec<(usize, usize)> =
            l.iter().flat_map(|&v| down[v].iter().map(move |&s| (pos[v], pos[s]))).collect();
        for (i, a) in segs.iter().enumerate() {
            total += segs[i + 1..]
                .iter()
                .filter(|b| (a.0 < b.0 && a.1 > b.1) || (a.0 > b.0 && a.1 < b.1))
                .count();
        }
    }
    total
}

/// Barycenter sweeps, down then up, keeping the order with the fewest crossings.
fn order_layers(layers: &mut [Vec<usize>], up: &[Vec<usize>], down: &[Vec<usize>]) {
    let count = up.len();
    let positions = |layers: &[Vec<usize>]| {
        let mut pos = vec![0usize; count];
        for l in layers {
            for (i, &v) in l.iter().enumerate() {
                pos[v] = i;
            }
        }
        pos
    };
    let mut best = layers.to_vec();
    let mut best_cross = crossings(layers, down, &positions(layers));
    for sweep in 0..8 {
        let downward = sweep % 2 == 0;
        let range: Vec<usize> = if downward {
            (1..layers.len()).collect()
        } else {
            (0..layers.len().saturating_sub(1)).rev().collect()
        };
        for li in range {
            let pos = positions(layers);
            let layer = &mut layers[li];
            let keys: Vec<(f64, usize)> = layer
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let nb = if downward { &up[v] } else { &down[v] };
                    let key = if nb.is_empty() {
                        i as f64
                    } else {
                        nb.iter().map(|&u| pos[u] as f64).sum::<f64>() / nb.len() as f64
                    };
                    (key, v)
                })
                .collect();
            let mut sorted = keys;
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            *layer = sorted.into_iter().map(|(_, v)| v).collect();
        }
        let c = crossings(layers, down, &positions(layers));
        if c < best_cross {
            best_cross = c;
            best = layers.to_vec();
        }
    }
    layers.clone_from_slice(&best);
}

/// x centres: each layer packed in order, then moved toward its neighbours' mean a few times
/// while keeping its order and the gap (the mean of a left-to-right and a right-to-left pass
/// keeps both constraints).
fn place_x(
    layers: &[Vec<usize>],
    widths: &[f64],
    up: &[Vec<usize>],
    down: &[Vec<usize>],
) -> Vec<f64> {
    let mut x = vec![0.0; widths.len()];
    for l in layers {
        let mut left = MARGIN;
        for &v in l {
            x[v] = left + widths[v] / 2.0;
            left += widths[v] + GAP_X;
        }
    }
    for round in 0..12 {
        let downward = round % 2 == 0;
        let order: Vec<usize> =
            if downward { (0..layers.len()).collect() } else { (0..layers.len()).rev().collect() };
        for li in order {
            let l = &layers[li];
            if l.is_empty() {
                continue;
            }
            let desired: Vec<f64> = l
                .iter()
                .map(|&v| {
                    let nb: Vec<usize> = if round >= 10 {
                        up[v].iter().chain(&down[v]).copied().collect()
                    } else if downward {
                        up[v].clone()
                    } else {
                        down[v].clone()
                    };
                    if nb.is_empty() {
                        x[v]
                    } else {
                        nb.iter().map(|&u| x[u]).sum::<f64>() / nb.len() as f64
                    }
                })
                .collect();
            let sep = |i: usize| (widths[l[i - 1]] + widths[l[i]]) / 2.0 + GAP_X;
            let mut lr = desired.clone();
            for i in 1..l.len() {
                lr[i] = lr[i].max(lr[i - 1] + sep(i));
            }
            let mut rl = desired;
            for i in (1..l.len()).rev() {
                rl[i - 1] = rl[i - 1].min(rl[i] - sep(i));
            }
            for (i, &v) in l.iter().enumerate() {
                x[v] = (lr[i] + rl[i]) / 2.0;
            }
        }
    }
    // Shift everything right of the margin.
    let min_left = (0..widths.len()).map(|v| x[v] - widths[v] / 2.0).fold(f64::INFINITY, f64::min);
    if min_left.is_finite() {
        for v in x.iter_mut() {
            *v += MARGIN - min_left;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(l: &Layout, sizes: &[(f64, f64)]) -> bool {
        for i in 0..sizes.len() {
            for j in i + 1..sizes.len() {
                let (a, b) = (l.centers[i], l.centers[j]);
                let dx = (a.0 - b.0).abs() < (sizes[i].0 + sizes[j].0) / 2.0;
                let dy = (a.1 - b.1).abs() < (sizes[i].1 + sizes[j].1) / 2.0;
                if dx && dy {
                    return true;
                }
            }
        }
        false
    }

    #[test]
    fn parents_sit_above_children_and_boxes_never_overlap() {
        // x, y → add → mul ← x (a diamond with a long edge).
        let sizes = vec![(80.0, 30.0), (60.0, 30.0), (100.0, 40.0), (90.0, 30.0)];
        let edges = vec![(0, 2), (1, 2), (2, 3), (0, 3)];
        let l = layered(&sizes, &edges);
        assert!(!overlaps(&l, &sizes));
        for &(a, b) in &edges {
            assert!(l.centers[a].1 < l.centers[b].1, "edge {a}->{b} must point down");
        }
        // The long edge x → mul bends through a point on the add layer.
        assert_eq!(l.edges[3].len(), 3);
        for (v, &(cx, cy)) in l.centers.iter().enumerate() {
            assert!(
                cx - sizes[v].0 / 2.0 >= 0.0 && cx + sizes[v].0 / 2.0 <= l.width,
                "node {v} inside the width"
            );
            assert!(cy - sizes[v].1 / 2.0 >= 0.0 && cy + sizes[v].1 / 2.0 <= l.height);
        }
    }

    #[test]
    fn a_cycle_is_laid_out_without_hanging() {
        let sizes = vec![(40.0, 20.0); 3];
        let l = layered(&sizes, &[(0, 1), (1, 2), (2, 0), (1, 1)]);
        assert_eq!(l.edges.len(), 4);
        assert!(l.edges[3].is_empty(), "a self-loop is not drawn");
        assert!(!overlaps(&l, &sizes));
    }

    #[test]
    fn barycenter_sweeps_untangle_a_crossed_pair() {
        // a→d, b→c with a, b in that order: drawn without crossing, c lands under b.
        let sizes = vec![(40.0, 20.0); 4];
        let l = layered(&sizes, &[(0, 3), (1, 2)]);
        assert!((l.centers[0].0 < l.centers[1].0) == (l.centers[3].0 < l.centers[2].0));
    }
}
