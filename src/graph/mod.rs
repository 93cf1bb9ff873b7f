//! The trace graph: values, nodes, traced operators and functions.
//!
//! A program builds values and operations on a [`Graph`]; each operation records a node whose
//! parents are its inputs. Nothing here knows about optimizers, LLMs or code sandboxes.

pub mod arena;
pub mod dot;
pub mod function;
pub mod layout;
pub mod node;
pub mod ops;
pub mod params;
pub mod picture;
pub mod semantics;
pub mod value;

pub(crate) use arena::FeedbackRecord;
pub use arena::{Graph, NodeId, NodeKind, OpInfo};
pub use function::{CallFailure, FnSpec, FromValue, IntoTracedOutput};
pub use node::Node;
pub use ops::Operand;
pub use params::{load_parameters, save_parameters, Module};
pub use semantics::PyError;
pub use value::Value;
