//! Validated workflow definitions, kept per (workflow, version): a stored version never
//! changes, so validating it once serves every webhook call and every claim of a run
//! pinned to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::ids::WorkflowId;
use crate::workflow::{Definition, Problem, validate_definition};

/// Versions kept at most; past it the cache starts over, which costs one validation per
/// version in use, not correctness.
const CAPACITY: usize = 4_096;

/// By (workflow, version); the problems when the stored definition does not validate
/// (saved before a rule tightened).
type Validated = Result<Arc<Definition>, Arc<[Problem]>>;
type Versions = HashMap<(WorkflowId, i32), Validated>;

#[derive(Default)]
pub struct DefinitionCache {
    versions: Mutex<Versions>,
}

impl DefinitionCache {
    /// The validated form of `stored`, the definition of `version` of `workflow_id`.
    pub fn get(
        &self,
        workflow_id: WorkflowId,
        version: i32,
        stored: &serde_json::Value,
    ) -> Validated {
        let key = (workflow_id, version);
        if let Some(known) = self.lock().get(&key) {
            return known.clone();
        }
        // Validated outside the lock: two callers may both validate a new version once.
        let validated: Validated = validate_definition(stored).map(Arc::new).map_err(Arc::from);
        let mut versions = self.lock();
        if versions.len() >= CAPACITY {
            versions.clear();
        }
        versions.insert(key, validated.clone());
        validated
    }

    fn lock(&self) -> MutexGuard<'_, Versions> {
        // The map is valid after any panic: each insert is one call.
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn definition(message: &str) -> serde_json::Value {
        json!({
            "nodes": [
                {"id": "start", "type": "trigger.manual"},
                {"id": "greet", "type": "set", "config": {"fields": {"m": message}}}
            ],
            "edges": [{"from": "start", "to": "greet"}]
        })
    }

    #[test]
    fn a_version_is_validated_once_and_kept() {
        let cache = DefinitionCache::default();
        let workflow = WorkflowId::generate();
        let first = cache.get(workflow, 1, &definition("a")).expect("valid");
        // The stored definition of a version never changes, so the cache is not asked to
        // look at it again.
        let again = cache
            .get(workflow, 1, &json!({"nodes": []}))
            .expect("cached");
        assert!(Arc::ptr_eq(&first, &again));
        let next = cache.get(workflow, 2, &definition("b")).expect("valid");
        assert!(!Arc::ptr_eq(&first, &next));
    }

    #[test]
    fn an_invalid_version_is_remembered_as_invalid() {
        let cache = DefinitionCache::default();
        let workflow = WorkflowId::generate();
        let problems = cache
            .get(workflow, 1, &json!({"nodes": []}))
            .expect_err("invalid");
        assert!(!problems.is_empty());
        assert!(cache.get(workflow, 1, &definition("a")).is_err());
    }
}
