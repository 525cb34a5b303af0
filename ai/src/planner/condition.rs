//! Conditions ("if the amount is over 100") to a field, an operator and a literal of the
//! expression language. Which object the field is read from is the planner's to decide,
//! since it depends on the trigger and the step before the condition.

use super::text::{Word, find_quoted};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Condition {
    /// Path segments, each a valid identifier of the expression language.
    pub field: Vec<String>,
    pub operator: &'static str,
    /// An expression literal: a number, `true`/`false`/`null`, or a quoted string.
    pub value: String,
}

/// Operator phrases, longer ones first so that "is greater than or equal to" is not read
/// as "is".
const OPERATORS: &[(&[&str], &str)] = &[
    (&["is", "greater", "than", "or", "equal", "to"], ">="),
    (&["is", "less", "than", "or", "equal", "to"], "<="),
    (&["is", "not", "equal", "to"], "!="),
    (&["is", "greater", "than"], ">"),
    (&["is", "more", "than"], ">"),
    (&["is", "higher", "than"], ">"),
    (&["is", "bigger", "than"], ">"),
    (&["is", "less", "than"], "<"),
    (&["is", "lower", "than"], "<"),
    (&["is", "smaller", "than"], "<"),
    (&["is", "at", "least"], ">="),
    (&["is", "at", "most"], "<="),
    (&["is", "equal", "to"], "=="),
    (&["does", "not", "equal"], "!="),
    (&["greater", "than"], ">"),
    (&["more", "than"], ">"),
    (&["less", "than"], "<"),
    (&["is", "over"], ">"),
    (&["is", "above"], ">"),
    (&["is", "under"], "<"),
    (&["is", "below"], "<"),
    (&["is", "not"], "!="),
    (&["at", "least"], ">="),
    (&["at", "most"], "<="),
    (&["exceeds"], ">"),
    (&["over"], ">"),
    (&["above"], ">"),
    (&["under"], "<"),
    (&["below"], "<"),
    (&["equals"], "=="),
    (&["is"], "=="),
    (&[">="], ">="),
    (&["<="], "<="),
    (&["!="], "!="),
    (&["=="], "=="),
    (&["="], "=="),
    (&[">"], ">"),
    (&["<"], "<"),
];

const ARTICLES: &[&str] = &["the", "a", "an", "its", "their", "field", "value"];

/// A condition starting with "if" (or "only if"), with the number of words it took.
pub(super) fn parse(words: &[Word]) -> Option<(Condition, usize)> {
    let start = if words.first()?.is("only") { 2 } else { 1 };
    if !words.get(start - 1)?.is("if") {
        return None;
    }
    for at in start + 1..words.len() {
        for (phrase, operator) in OPERATORS {
            let matches = phrase.iter().enumerate().all(|(i, p)| {
                words
                    .get(at + i)
                    .is_some_and(|w| w.lower == *p || w.raw == *p)
            });
            if !matches {
                continue;
            }
            let field = field_path(&words[start..at])?;
            let (value, taken) = literal(&words[at + phrase.len()..])?;
            let condition = Condition {
                field,
                operator,
                value,
            };
            return Some((condition, at + phrase.len() + taken));
        }
    }
    None
}

/// "the order total" → `order_total`; "body.amount" → `body`, `amount`.
fn field_path(words: &[Word]) -> Option<Vec<String>> {
    let kept: Vec<&Word> = words.iter().filter(|w| !w.is_any(ARTICLES)).collect();
    let segments: Vec<String> = if let [single] = kept.as_slice() {
        single.bare.split('.').map(str::to_owned).collect()
    } else {
        vec![
            kept.iter()
                .map(|w| w.lower.as_str())
                .collect::<Vec<_>>()
                .join("_"),
        ]
    };
    let identifier = |s: &String| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    (!kept.is_empty() && segments.iter().all(identifier)).then_some(segments)
}

/// The value compared against, as an expression literal.
fn literal(words: &[Word]) -> Option<(String, usize)> {
    let first = words.first()?;
    if first.raw.starts_with(['"', '\'', '“', '‘']) {
        let text = words
            .iter()
            .map(|w| w.raw.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let quoted = find_quoted(&text)?;
        let taken = quoted.split_whitespace().count().max(1);
        return Some((string_literal(&quoted), taken));
    }
    let number = first
        .bare
        .trim_start_matches(['$', '€', '£'])
        .trim_end_matches('%')
        .replace(',', "");
    if !number.is_empty() && number.parse::<f64>().is_ok_and(f64::is_finite) {
        return Some((number, 1));
    }
    match first.lower.as_str() {
        "true" | "false" | "null" => Some((first.lower.clone(), 1)),
        "" => None,
        _ => Some((string_literal(&first.bare), 1)),
    }
}

fn string_literal(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(text: &str) -> Option<(Vec<String>, &'static str, String, usize)> {
        let words: Vec<Word> = super::super::text::split_clauses(text)
            .into_iter()
            .flatten()
            .collect();
        parse(&words).map(|(c, used)| (c.field, c.operator, c.value, used))
    }

    #[test]
    fn comparisons() {
        assert_eq!(
            condition("if the amount is over 100"),
            Some((vec!["amount".into()], ">", "100".into(), 6))
        );
        assert_eq!(
            condition("if amount is greater than or equal to $1,000"),
            Some((vec!["amount".into()], ">=", "1000".into(), 9))
        );
        assert_eq!(
            condition("if the order total is less than 5.5 post"),
            Some((vec!["order_total".into()], "<", "5.5".into(), 8))
        );
        assert_eq!(
            condition("if body.status equals paid"),
            Some((
                vec!["body".into(), "status".into()],
                "==",
                "\"paid\"".into(),
                4
            ))
        );
        assert_eq!(
            condition("if the status is not \"on hold\""),
            Some((vec!["status".into()], "!=", "\"on hold\"".into(), 7))
        );
        assert_eq!(
            condition("only if urgent is true"),
            Some((vec!["urgent".into()], "==", "true".into(), 5))
        );
    }

    #[test]
    fn not_conditions() {
        assert_eq!(condition("if you can"), None);
        assert_eq!(condition("if is 3"), None);
        assert_eq!(condition("if the 3rd is 4"), None);
        assert_eq!(condition("when x is 3"), None);
    }
}
