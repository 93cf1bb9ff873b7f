//! Proposals: what one reply would change, read without changing anything. A search asks an
//! optimizer for many replies to the same prompt, turns each into a [`Proposal`], scores them
//! with the task's own forward pass, and applies only the one it keeps.

use super::optoprime::reply::parse_reply;
use super::optoprime::update::{plan_updates, Outcome};
use crate::graph::Value;
use crate::llm::Reply;
use crate::propagate::Summary;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The update one reply proposes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Every parameter's value under this proposal: the suggested value where it was accepted,
    /// the current value elsewhere.
    pub values: IndexMap<String, Value>,
    /// How many parameters the proposal changes.
    pub changed: usize,
    /// Suggestions that could not be used, `name: reason`.
    pub rejected: Vec<String>,
    /// Why the reply proposes nothing (unreadable, TERMINATE), if it does not.
    pub error: Option<String>,
    pub reasoning: Option<String>,
}

/// Reads `reply` against the variables of `summary` (the prompt it answers).
pub fn propose_from_reply(summary: &Summary, reply: &Reply) -> Proposal {
    let mut values: IndexMap<String, Value> =
        summary.variables.iter().map(|v| (v.name.clone(), v.value.clone())).collect();
    let parsed = match parse_reply(&reply.text) {
        Ok(p) => p,
        Err(e) => return Proposal { values, error: Some(e.to_string()), ..Default::default() },
    };
    if parsed.terminate {
        return Proposal {
            values,
            error: Some("the reply said TERMINATE".into()),
            reasoning: parsed.reasoning,
            ..Default::default()
        };
    }
    let plan = plan_updates(&summary.variables, &parsed);
    let mut changed = 0;
    let mut rejected = Vec::new();
    for u in &plan.updates {
        match &u.outcome {
            Outcome::Updated { new } => {
                values.insert(u.name.clone(), new.clone());
                changed += 1;
            }
            Outcome::Rejected { reason, .. } => rejected.push(format!("{}: {reason}", u.name)),
            Outcome::Unchanged | Outcome::Missing => {}
        }
    }
    let error = (changed == 0).then(|| {
        if rejected.is_empty() {
            "the reply changes nothing".to_string()
        } else {
            format!("every suggestion was rejected: {}", rejected.join("; "))
        }
    });
    Proposal { values, changed, rejected, error, reasoning: parsed.reasoning }
}
