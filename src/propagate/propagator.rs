//! The `Propagator` trait for custom feedback propagation (the reference's `Propagator`), and
//! `SumPropagator`, which the reference ships broken.
//!
//! The default minimal-subgraph propagation does not go through this trait: it is a single walk
//! over bitsets (see `graph_propagator.rs`). The trait serves propagators that compute a
//! feedback value per node — numeric gradients, summed scores, per-node texts.

use crate::error::{Error, Result};
use crate::graph::Node;
use std::collections::HashMap;

pub trait Propagator {
    type Feedback: Clone;

    /// The feedback the output starts with.
    fn init_feedback(&mut self, output: &Node, feedback: &str) -> Self::Feedback;

    /// Feedback for each parent of `child` (in `child.parents()` order), given the child's
    /// aggregated feedback.
    fn propagate(&mut self, child: &Node, feedback: &Self::Feedback) -> Vec<Self::Feedback>;

    /// Combines the feedback a node received from several children.
    fn aggregate(&mut self, feedbacks: Vec<Self::Feedback>) -> Self::Feedback;
}

/// Runs `propagator` from `output` back to the roots, in reverse topological order, and returns
/// the aggregated feedback every root received (in node order).
pub fn backward_with_propagator<P: Propagator>(
    output: &Node,
    feedback: &str,
    propagator: &mut P,
) -> Result<Vec<(Node, P::Feedback)>> {
    let mut pending: HashMap<usize, Vec<P::Feedback>> = HashMap::new();
    pending.insert(output.id(), vec![propagator.init_feedback(output, feedback)]);
    let graph = output.graph();
    let mut roots = Vec::new();
    // Node ids are a topological order (parents are created first), so a max-first sweep visits
    // every child before its parents.
    for id in (0..=output.id()).rev() {
        let Some(received) = pending.remove(&id) else { continue };
        let node = graph.nodes_by_id(id);
        let total = propagator.aggregate(received);
        let parents = node.parents();
        if parents.is_empty() {
            roots.push((node, total));
            continue;
        }
        let out = propagator.propagate(&node, &total);
        if out.len() != parents.len() {
            return Err(Error::Graph(format!(
                "propagator returned {} feedbacks for {} parents of {}",
                out.len(),
                parents.len(),
                node.name()
            )));
        }
        for (p, f) in parents.iter().zip(out) {
            pending.entry(p.id()).or_default().push(f);
        }
    }
    roots.reverse();
    Ok(roots)
}

/// Feedback that adds up: numbers are summed, texts are joined line by line.
#[derive(Clone, Debug, PartialEq)]
pub enum SumFeedback {
    Number(f64),
    Text(String),
}

/// Sends the same feedback to every parent and sums what a node receives.
#[derive(Clone, Debug, Default)]
pub struct SumPropagator;

impl Propagator for SumPropagator {
    type Feedback = SumFeedback;

    fn init_feedback(&mut self, _output: &Node, feedback: &str) -> SumFeedback {
        match feedback.trim().parse::<f64>() {
            Ok(x) => SumFeedback::Number(x),
            Err(_) => SumFeedback::Text(feedback.to_string()),
        }
    }

    fn propagate(&mut self, child: &Node, feedback: &SumFeedback) -> Vec<SumFeedback> {
        vec![feedback.clone(); child.parents().len()]
    }

    fn aggregate(&mut self, feedbacks: Vec<SumFeedback>) -> SumFeedback {
        if feedbacks.iter().all(|f| matches!(f, SumFeedback::Number(_))) {
            SumFeedback::Number(
                feedbacks
                    .iter()
                    .map(|f| if let SumFeedback::Number(x) = f { *x } else { 0.0 })
                    .sum(),
            )
        } else {
            let texts: Vec<String> = feedbacks
                .into_iter()
                .map(|f| match f {
                    SumFeedback::Number(x) => x.to_string(),
                    SumFeedback::Text(t) => t,
                })
                .collect();
            SumFeedback::Text(texts.join("\n"))
        }
    }
}
