//! Reading one JSON object field by field while collecting problems, so a validator can
//! report every bad field of an object (and every key it does not know) in one pass.
//!
//! Messages name the field by its path inside the node, `config/url: must be a string`,
//! and unknown keys get a spelling suggestion, because most of them are typos.

use std::borrow::Cow;

use serde_json::{Map, Value};

pub(super) struct FieldReader<'v, 'p> {
    object: &'v Map<String, Value>,
    /// The object's path inside its node (`config`, `retry`), empty for the node itself.
    path: String,
    known: Vec<&'static str>,
    problems: &'p mut Vec<String>,
    problems_at_start: usize,
}

impl<'v, 'p> FieldReader<'v, 'p> {
    /// `None` (with a problem) when `value` is not an object.
    pub(super) fn new(
        value: &'v Value,
        path: impl Into<String>,
        problems: &'p mut Vec<String>,
    ) -> Option<Self> {
        let path = path.into();
        let Some(object) = value.as_object() else {
            problems.push(format!("{}: must be an object", display_path(&path)));
            return None;
        };
        Some(Self::of(object, path, problems))
    }

    pub(super) fn of(
        object: &'v Map<String, Value>,
        path: impl Into<String>,
        problems: &'p mut Vec<String>,
    ) -> Self {
        let problems_at_start = problems.len();
        Self {
            object,
            path: path.into(),
            known: Vec::new(),
            problems,
            problems_at_start,
        }
    }

    /// The value of `key`, also when it is `null`; `None` only when the key is absent.
    pub(super) fn any(&mut self, key: &'static str) -> Option<&'v Value> {
        self.known.push(key);
        self.object.get(key)
    }

    /// The value of an optional field converted by `convert`; `None` when the field is
    /// absent or `null` (meaning "use the default") or when it is invalid (with a problem).
    pub(super) fn optional<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(&'v Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.any(key).filter(|v| !v.is_null())?;
        match convert(value) {
            Ok(converted) => Some(converted),
            Err(message) => {
                self.report(key, message);
                None
            }
        }
    }

    /// Like [`Self::optional`], with a problem when the field is absent or `null`.
    pub(super) fn required<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(&'v Value) -> Result<T, String>,
    ) -> Option<T> {
        if self.object.get(key).is_none_or(Value::is_null) {
            self.known.push(key);
            self.report(key, "is required");
            return None;
        }
        self.optional(key, convert)
    }

    pub(super) fn report(&mut self, key: &str, message: impl AsRef<str>) {
        let path = self.child_path(key);
        self.problems.push(format!("{path}: {}", message.as_ref()));
    }

    /// Adds problems that already start with their own path (those of nested objects read
    /// by other means).
    pub(super) fn push_all(&mut self, messages: Vec<String>) {
        self.problems.extend(messages);
    }

    /// The path of a field of this object, for readers of nested objects.
    pub(super) fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.path)
        }
    }

    /// Reports every key that was never read, and tells whether this object produced no
    /// problem at all.
    pub(super) fn finish(self) -> bool {
        for key in self.object.keys() {
            if self.known.contains(&key.as_str()) {
                continue;
            }
            let suggestion = closest(key, self.known.iter().copied())
                .map(|known| format!(" (did you mean `{known}`?)"))
                .unwrap_or_default();
            let message = format!("unknown key `{}`{suggestion}", shown(key));
            if self.path.is_empty() {
                self.problems.push(message);
            } else {
                self.problems.push(format!("{}: {message}", self.path));
            }
        }
        self.problems.len() == self.problems_at_start
    }
}

/// The candidate `typed` most likely misspells: a few edits away, fewer for short words
/// (so `nope` does not suggest `code`).
pub(crate) fn closest<'c>(
    typed: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let allowed = (typed.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(candidate, typed), candidate))
        .filter(|&(distance, _)| distance <= allowed)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// `text` as a message may quote it: long input is cut, so a problem list never grows
/// much beyond the definition that caused it.
pub(crate) fn shown(text: &str) -> Cow<'_, str> {
    const MAX_CHARS: usize = 64;
    if text.chars().count() <= MAX_CHARS {
        return Cow::Borrowed(text);
    }
    let cut: String = text.chars().take(MAX_CHARS - 3).collect();
    Cow::Owned(format!("{cut}..."))
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "node" } else { path }
}

// Converters for `FieldReader::optional` and `required`; each error is the end of a
// message that starts with the field's path.

pub(super) fn string(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "must be a string".to_owned())
}

pub(super) fn non_blank_string(value: &Value) -> Result<&str, String> {
    let text = string(value)?;
    if text.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(text)
}

pub(super) fn bounded_text(max_chars: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |value| {
        let text = string(value)?;
        if text.chars().count() > max_chars {
            return Err(format!("must be at most {max_chars} characters"));
        }
        Ok(text.to_owned())
    }
}

pub(super) fn integer_in(min: u64, max: u64) -> impl Fn(&Value) -> Result<u64, String> {
    move |value| {
        value
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("must be an integer from {min} to {max}"))
    }
}

pub(super) fn number_in(min: f64, max: f64) -> impl Fn(&Value) -> Result<f64, String> {
    move |value| {
        value
            .as_f64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("must be a number from {min} to {max}"))
    }
}

pub(super) fn object(value: &Value) -> Result<&Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| "must be an object".to_owned())
}

/// A name from a fixed list, parsed by `parse`.
pub(super) fn one_of<T>(
    names: &'static [&'static str],
    parse: impl Fn(&str) -> Option<T>,
) -> impl Fn(&Value) -> Result<T, String> {
    move |value| {
        let listed = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        value
            .as_str()
            .and_then(&parse)
            .ok_or_else(|| format!("must be one of {listed}"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reports_missing_wrong_and_unknown_fields_with_their_paths() {
        let value = json!({"url": 5, "methd": "GET"});
        let mut problems = Vec::new();
        let mut reader = FieldReader::new(&value, "config", &mut problems).expect("an object");
        assert_eq!(reader.required("url", string), None);
        assert_eq!(reader.optional("method", string), None);
        assert_eq!(reader.required("source", string), None);
        assert!(!reader.finish());
        assert_eq!(
            problems,
            [
                "config/url: must be a string",
                "config/source: is required",
                "config: unknown key `methd` (did you mean `method`?)",
            ]
        );
    }

    #[test]
    fn null_counts_as_absent_for_optional_fields() {
        let value = json!({"timeoutMs": null});
        let mut problems = Vec::new();
        let mut reader = FieldReader::new(&value, "config", &mut problems).expect("an object");
        assert_eq!(reader.optional("timeoutMs", integer_in(1, 10)), None);
        assert!(reader.finish());
        assert!(problems.is_empty());
    }

    #[test]
    fn a_non_object_is_reported() {
        let mut problems = Vec::new();
        assert!(FieldReader::new(&json!([1]), "retry", &mut problems).is_none());
        assert_eq!(problems, ["retry: must be an object"]);
    }
}
