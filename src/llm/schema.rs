//! `ReplySchema`: a JSON schema a reply must follow, carried with a request to the backend (the
//! local engine constrains decoding with it, a remote server gets it as `response_format`). What
//! the schema says is the caller's: the optimizers build theirs in `optim::reply_schema`.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The schema of one reply, as JSON Schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplySchema {
    pub json: Json,
}

impl ReplySchema {
    /// Any JSON schema.
    pub fn raw(json: Json) -> Self {
        ReplySchema { json }
    }
}
