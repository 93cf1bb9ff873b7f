//! Parameter containers: collect the parameters of a struct of nodes, and save/load their
//! values as JSON (readable, diffable, no pickle — the reference's pickles break across versions).

use super::node::Node;
use super::value::Value;
use crate::error::{Error, Result};
use indexmap::IndexMap;
use std::path::Path;

/// Anything that owns trainable parameters (a model, an agent, a controller).
pub trait Module {
    /// The parameters, in a stable order.
    fn parameters(&self) -> Vec<Node>;

    /// Parameter values by name.
    fn parameter_values(&self) -> IndexMap<String, Value> {
        self.parameters().iter().map(|p| (p.name(), p.value())).collect()
    }

    fn save(&self, path: &Path) -> Result<()> {
        save_parameters(&self.parameters(), path)
    }

    fn load(&self, path: &Path) -> Result<()> {
        load_parameters(&self.parameters(), path)
    }
}

impl Module for Vec<Node> {
    fn parameters(&self) -> Vec<Node> {
        self.iter().filter(|n| n.is_parameter()).cloned().collect()
    }
}

impl Module for [Node] {
    fn parameters(&self) -> Vec<Node> {
        self.iter().filter(|n| n.is_parameter()).cloned().collect()
    }
}

/// Writes `{name: value}` as JSON, atomically (temp file + rename): a crash never leaves a half
/// file where a good one was.
pub fn save_parameters(params: &[Node], path: &Path) -> Result<()> {
    let map: IndexMap<String, Value> = params.iter().map(|p| (p.name(), p.value())).collect();
    let text = serde_json::to_string_pretty(&map)
        .map_err(|e| Error::Checkpoint { path: path.into(), reason: e.to_string() })?;
    crate::util::write_atomic(path, text.as_bytes())
}

/// Reads values saved by [`save_parameters`] into `params` (matched by name). Every parameter
/// must be present and keep its type; nothing is changed unless all of them fit.
pub fn load_parameters(params: &[Node], path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let map: IndexMap<String, Value> = serde_json::from_str(&text).map_err(|e| {
        Error::Checkpoint { path: path.into(), reason: format!("not a parameter file: {e}") }
    })?;
    let mut updates = Vec::with_capacity(params.len());
    for p in params {
        let name = p.name();
        let value = map.get(&name).ok_or_else(|| Error::Checkpoint {
            path: path.into(),
            reason: format!("parameter `{name}` is missing"),
        })?;
        let current = p.value();
        if value.type_name() != current.type_name() && !matches!(current, Value::None) {
            return Err(Error::Checkpoint {
                path: path.into(),
                reason: format!(
                    "parameter `{name}` holds a {} but the file has a {}",
                    current.type_name(),
                    value.type_name()
                ),
            });
        }
        updates.push((p, value.clone()));
    }
    for (p, v) in updates {
        p.set_value(v);
    }
    Ok(())
}
