//! The JSON schema of an optimizer's reply, built from the trainable parameters (OptoPrime's
//! reply shape; OPRO and TextGrad ask for the same one). The `llm` layer only carries a schema
//! ([`ReplySchema`]) to the backend; what it says is the optimizer's business, so it lives here.
//!
//! The reply is `{"reasoning": str, "answer": str?, "suggestion": {<param>: <type>, ...}}` with
//! exactly the parameters' names as keys. Reasoning comes first so the model thinks before it
//! commits to values, and it has a length cap so a small model cannot ramble into the token cap.

use crate::graph::Value;
use crate::llm::ReplySchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

/// The type a parameter's suggestion must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Bool,
    Int,
    Float,
    Str,
    List,
    Dict,
    /// Python source text, sent as a JSON string.
    Code,
    /// Any JSON value (a parameter holding None).
    Any,
}

impl ParamType {
    /// The type of a parameter from its current value.
    pub fn of(value: &Value) -> Self {
        use Value as V;
        match value {
            V::None => ParamType::Any,
            V::Bool(_) => ParamType::Bool,
            V::Int(_) => ParamType::Int,
            V::Float(_) => ParamType::Float,
            V::Str(_) => ParamType::Str,
            V::List(_) => ParamType::List,
            V::Dict(_) => ParamType::Dict,
            V::Code(_) => ParamType::Code,
        }
    }

    fn json_schema(&self) -> Json {
        match self {
            ParamType::Bool => json!({"type": "boolean"}),
            ParamType::Int => json!({"type": "integer"}),
            ParamType::Float => json!({"type": "number"}),
            ParamType::Str | ParamType::Code => json!({"type": "string"}),
            ParamType::List => json!({"type": "array"}),
            ParamType::Dict => json!({"type": "object"}),
            ParamType::Any => json!({}),
        }
    }
}

/// Options of the optimizer reply schema.
#[derive(Clone, Debug, PartialEq)]
pub struct SuggestionSchemaOptions {
    /// Ask for an `answer` string as well (when the instruction asks a question).
    pub with_answer: bool,
    /// Upper bound on the reasoning's length in characters (0: no reasoning field).
    pub reasoning_max_chars: usize,
}

impl Default for SuggestionSchemaOptions {
    fn default() -> Self {
        SuggestionSchemaOptions { with_answer: false, reasoning_max_chars: 600 }
    }
}

/// The OptoPrime reply: reasoning, optional answer, and a suggestion with exactly these
/// parameters, each of its type.
pub fn suggestion_schema<'a>(
    params: impl IntoIterator<Item = (&'a str, ParamType)>,
    opts: &SuggestionSchemaOptions,
) -> ReplySchema {
    let mut props = serde_json::Map::new();
    let mut required = Vec::new();
    for (name, ty) in params {
        props.insert(name.to_string(), ty.json_schema());
        required.push(Json::String(name.to_string()));
    }
    let suggestion = json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    });
    let mut top = serde_json::Map::new();
    let mut top_required = Vec::new();
    if opts.reasoning_max_chars > 0 {
        top.insert(
            "reasoning".into(),
            json!({"type": "string", "maxLength": opts.reasoning_max_chars}),
        );
        top_required.push(json!("reasoning"));
    }
    if opts.with_answer {
        top.insert("answer".into(), json!({"type": "string"}));
        top_required.push(json!("answer"));
    }
    top.insert("suggestion".into(), suggestion);
    top_required.push(json!("suggestion"));
    ReplySchema {
        json: json!({
            "type": "object",
            "properties": top,
            "required": top_required,
            "additionalProperties": false,
        }),
    }
}

/// The parameter names of a suggestion schema, in order (empty for other schemas).
pub fn suggestion_names(schema: &ReplySchema) -> Vec<String> {
    schema
        .json
        .pointer("/properties/suggestion/properties")
        .and_then(Json::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestion_schema_names_exact_parameters_in_order() {
        let s = suggestion_schema(
            [("x", ParamType::Float), ("__code0", ParamType::Code)],
            &SuggestionSchemaOptions::default(),
        );
        assert_eq!(suggestion_names(&s), vec!["x", "__code0"]);
        assert_eq!(s.json["properties"]["suggestion"]["additionalProperties"], json!(false));
        assert_eq!(s.json["properties"]["suggestion"]["properties"]["x"]["type"], json!("number"));
        let keys: Vec<_> = s.json["properties"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec!["reasoning", "suggestion"]);
    }
}
