//! Search: spends the batch engine's spare throughput on optimization power. Each step asks the
//! optimizer for K candidate updates per run (all runs' candidates in ONE `generate` batch,
//! sharing the prompt head in the prefix cache), adds proposals of its own where a parameter's
//! type allows (for numbers: bracketing, interpolation, expansion), never spends an evaluation
//! on a value already tried, scores every candidate with the task's own forward pass (in
//! parallel), and keeps the best.
//!
//! Search is not an optimizer: it wraps one (OptoPrime, OPRO, OptoPrimeMulti), through
//! [`crate::optim::Optimizer::propose`] and [`crate::optim::Optimizer::conclude_search_step`].
//! A task whose forward pass acts on the world ([`crate::train::CandidateEvaluation::ActsOnWorld`])
//! gets one candidate per step, the applied one.
//!
//! The baselines (`random`, `section`) use the same harness with no model at all, so every
//! figure can stand beside blind search and a classical derivative-free method given the same
//! number of evaluations.

pub mod candidate;
pub mod history;
pub mod numeric;
pub mod parents;
pub mod step;
pub mod strategy;

pub use candidate::{ScoredCandidate, SearchReport, Source};
pub use history::{History, Tried};
pub use step::search_step;
pub use strategy::{SearchSettings, Strategy};
