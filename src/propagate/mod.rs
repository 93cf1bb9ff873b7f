//! Feedback propagation: each parameter receives the minimal subgraph from it to the output,
//! together with the feedback.

pub mod graph_propagator;
pub mod propagator;
pub mod summary;

pub use graph_propagator::{subgraph_nodes, summarize, BackwardOptions};
pub use propagator::{backward_with_propagator, Propagator, SumFeedback, SumPropagator};
pub use summary::{FeedbackEntry, NodeView, Summary};
