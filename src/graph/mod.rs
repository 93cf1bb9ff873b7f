//! The trace graph: values, nodes, traced operators and functions.

pub mod value;

pub use value::Value;

/// Placeholder until the graph lands (see issue 2).
#[derive(Clone, Debug)]
pub struct Node;
