//! Feedback propagation: each parameter receives the minimal subgraph from it to the output,
//! together with the feedback.

pub mod summary;

pub use summary::{FeedbackEntry, NodeView, Summary};
