//! Words, clauses and the small things found in them (URLs, addresses, channels,
//! repositories, quoted text).
//!
//! Matching is done on a lower-case form with the punctuation around a word removed,
//! while the text the user wrote (a message, a URL, a time zone) is taken from the word
//! as written, so nothing the user typed is re-cased.

/// One whitespace-separated token of the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    /// As written.
    pub raw: String,
    /// Without the punctuation around it, case kept.
    pub bare: String,
    /// `bare` in lower case: what phrases are matched against.
    pub lower: String,
}

impl Word {
    fn new(raw: &str) -> Self {
        let bare = raw
            .trim_matches(|c: char| {
                matches!(
                    c,
                    ',' | ';'
                        | ':'
                        | '!'
                        | '?'
                        | '('
                        | ')'
                        | '['
                        | ']'
                        | '"'
                        | '“'
                        | '”'
                        | '‘'
                        | '’'
                )
            })
            .trim_end_matches('.')
            .trim_matches('\'')
            .to_owned();
        Self {
            raw: raw.to_owned(),
            lower: bare.to_lowercase(),
            bare,
        }
    }

    pub fn is(&self, lower: &str) -> bool {
        self.lower == lower
    }

    pub fn is_any(&self, options: &[&str]) -> bool {
        options.contains(&self.lower.as_str())
    }
}

/// Verbs that start an action: a clause is split before "and" when one follows it.
pub(super) const ACTION_VERBS: &[&str] = &[
    "post",
    "send",
    "call",
    "create",
    "open",
    "ask",
    "notify",
    "email",
    "e-mail",
    "mail",
    "fetch",
    "get",
    "summarise",
    "summarize",
    "message",
    "alert",
    "ping",
    "hit",
    "put",
    "patch",
    "delete",
    "file",
    "raise",
    "tell",
    "use",
    "have",
    "forward",
    "submit",
];

/// Words that carry no meaning at the start of a clause.
const LEADING_FILLERS: &[&str] = &[
    "and",
    "then",
    "also",
    "please",
    "first",
    "finally",
    "next",
    "afterwards",
    "lastly",
    "after",
    "that",
];

/// Splits a prompt into clauses: at `,` `;` `.` `!` `?` ending a word, before "then",
/// before "and" followed by an action verb, and before "otherwise"/"else". Quoted text and
/// `{{ }}` templates are never split, so a message may hold commas and dotted paths.
pub(super) fn split_clauses(prompt: &str) -> Vec<Vec<Word>> {
    let tokens: Vec<&str> = prompt.split_whitespace().collect();
    let mut clauses = Vec::new();
    let mut current: Vec<Word> = Vec::new();
    let mut in_quote = false;
    let mut in_single = false;
    let mut template_depth = 0usize;
    for (index, token) in tokens.iter().enumerate() {
        let word = Word::new(token);
        let literal = in_quote || in_single || template_depth > 0;
        if !literal {
            let next_is_verb = tokens
                .get(index + 1)
                .map(|next| Word::new(next))
                .is_some_and(|next| next.is_any(ACTION_VERBS) || next.is("then"));
            if word.raw.eq_ignore_ascii_case("then") || (word.is("and") && next_is_verb) {
                flush(&mut clauses, &mut current);
                continue;
            }
            if word.is_any(&["otherwise", "else"]) {
                flush(&mut clauses, &mut current);
            }
        }
        for c in token.chars() {
            match c {
                '"' => in_quote = !in_quote,
                '“' => in_quote = true,
                '”' => in_quote = false,
                _ => {}
            }
        }
        if !in_quote && token.starts_with(['\'', '‘']) {
            in_single = true;
        }
        if in_single
            && token
                .trim_end_matches([',', ';', '.', '!', '?', ':'])
                .ends_with(['\'', '’'])
            && token.chars().count() > 1
        {
            in_single = false;
        }
        template_depth = (template_depth + token.matches("{{").count())
            .saturating_sub(token.matches("}}").count());
        let ends_clause = !in_quote
            && !in_single
            && template_depth == 0
            && token.ends_with([',', ';', '.', '!', '?']);
        current.push(word);
        if ends_clause {
            flush(&mut clauses, &mut current);
        }
    }
    flush(&mut clauses, &mut current);
    clauses
}

fn flush(clauses: &mut Vec<Vec<Word>>, current: &mut Vec<Word>) {
    let start = current
        .iter()
        .position(|w| !w.is_any(LEADING_FILLERS))
        .unwrap_or(current.len());
    let words: Vec<Word> = current.drain(..).skip(start).collect();
    if !words.is_empty() {
        clauses.push(words);
    }
}

/// The words as written, joined, without the punctuation that ended the clause.
pub(super) fn join(words: &[Word]) -> String {
    let text = words
        .iter()
        .map(|w| w.raw.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    text.trim_end_matches([',', ';', '.', '!', '?']).to_owned()
}

/// The words' bare forms joined: a fragment of free text (a message, a title).
pub(super) fn join_bare(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| w.bare.as_str())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first absolute http(s) URL, without the punctuation that may follow it in prose.
pub(super) fn find_url(text: &str) -> Option<String> {
    text.split_whitespace().find_map(|token| {
        let start = token.find("https://").or_else(|| token.find("http://"))?;
        let url = token[start..].trim_end_matches(|c: char| {
            matches!(
                c,
                '.' | ',' | ';' | ':' | '!' | '?' | ')' | ']' | '}' | '"' | '\'' | '”' | '’'
            )
        });
        let host = url.split("://").nth(1)?;
        (!host.is_empty()).then(|| url.to_owned())
    })
}

/// Every e-mail address, in order, without repeats.
pub(super) fn find_emails(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for token in text.split_whitespace() {
        let candidate = token
            .trim_matches(|c: char| {
                matches!(
                    c,
                    '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '"' | '\'' | '“' | '”'
                )
            })
            .trim_end_matches(['.', '!', '?']);
        if is_email(candidate) && !found.iter().any(|f| f == candidate) {
            found.push(candidate.to_owned());
        }
    }
    found
}

fn is_email(candidate: &str) -> bool {
    if candidate.contains("://") {
        return false;
    }
    let Some((local, domain)) = candidate.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

/// A Slack channel written as `#name`.
pub(super) fn find_channel(words: &[Word]) -> Option<String> {
    words.iter().find_map(|w| {
        let name = w.bare.strip_prefix('#')?;
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
        valid.then(|| w.bare.clone())
    })
}

/// A GitHub repository written as `owner/repo`; one right after "in", "repo" or
/// "repository" is preferred over one elsewhere.
pub(super) fn find_repo(words: &[Word]) -> Option<(String, String)> {
    let after_marker = words.windows(2).find_map(|pair| {
        pair[0]
            .is_any(&["in", "repo", "repository", "to", "on", "for"])
            .then(|| as_repo(&pair[1].bare))
            .flatten()
    });
    after_marker.or_else(|| words.iter().find_map(|w| as_repo(&w.bare)))
}

fn as_repo(token: &str) -> Option<(String, String)> {
    if token.contains("://") || token.contains('@') {
        return None;
    }
    let (owner, repo) = token.split_once('/')?;
    let part_ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let named = owner.chars().any(|c| c.is_ascii_alphabetic());
    (part_ok(owner) && part_ok(repo) && named).then(|| (owner.to_owned(), repo.to_owned()))
}

/// The first quoted text: `"…"`, `“…”`, `‘…’`, or `'…'` opened at the start of a word (so
/// an apostrophe is not a quote).
pub(super) fn find_quoted(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    for (start, &open) in chars.iter().enumerate() {
        let close = match open {
            '"' => '"',
            '“' => '”',
            '‘' => '’',
            '\'' if start == 0 || chars[start - 1].is_whitespace() => '\'',
            _ => continue,
        };
        let rest = &chars[start + 1..];
        let end = rest.iter().enumerate().position(|(i, &c)| {
            c == close
                && (close != '\''
                    || rest
                        .get(i + 1)
                        .is_none_or(|n| n.is_whitespace() || ",.;:!?".contains(*n)))
        });
        if let Some(end) = end {
            let inner: String = rest[..end].iter().collect();
            if !inner.trim().is_empty() {
                return Some(inner.trim().to_owned());
            }
        }
    }
    None
}

/// Upper-cases the first letter, for text shown as a sentence.
pub(super) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Word> {
        text.split_whitespace().map(Word::new).collect()
    }

    fn clause_texts(prompt: &str) -> Vec<String> {
        split_clauses(prompt).iter().map(|c| join(c)).collect()
    }

    #[test]
    fn clauses_split_at_punctuation_then_and_before_verbs() {
        assert_eq!(
            clause_texts("When a webhook is received, post hi to Slack #a and then email x@y.io"),
            [
                "When a webhook is received",
                "post hi to Slack #a",
                "email x@y.io"
            ]
        );
        assert_eq!(
            clause_texts("fetch https://a.io/x then post it to slack and send an email to b@c.io"),
            [
                "fetch https://a.io/x",
                "post it to slack",
                "send an email to b@c.io"
            ]
        );
    }

    #[test]
    fn templates_and_single_quotes_stay_whole() {
        assert_eq!(
            clause_texts("post {{ trigger.body. }} now. email x@y.io"),
            ["post {{ trigger.body. }} now", "email x@y.io"]
        );
        assert_eq!(
            clause_texts("post 'a, b' to slack, then stop"),
            ["post 'a, b' to slack", "stop"]
        );
    }

    #[test]
    fn quoted_text_and_plain_and_stay_whole() {
        assert_eq!(
            clause_texts("post \"Tom, and then Jerry.\" to slack"),
            ["post \"Tom, and then Jerry.\" to slack"]
        );
        assert_eq!(
            clause_texts("post salt and pepper to slack"),
            ["post salt and pepper to slack"]
        );
    }

    #[test]
    fn otherwise_starts_a_clause() {
        assert_eq!(
            clause_texts("if x is 1 post a to slack otherwise email b@c.io"),
            ["if x is 1 post a to slack", "otherwise email b@c.io"]
        );
    }

    #[test]
    fn urls_lose_trailing_prose_punctuation() {
        assert_eq!(
            find_url("call https://api.example.com/v1/items?id=3."),
            Some("https://api.example.com/v1/items?id=3".to_owned())
        );
        assert_eq!(
            find_url("(see http://x.io/a)"),
            Some("http://x.io/a".to_owned())
        );
        assert_eq!(find_url("call https:// now"), None);
        assert_eq!(find_url("call the api"), None);
    }

    #[test]
    fn emails_are_found_in_order_without_repeats() {
        assert_eq!(
            find_emails("send to ada@example.com, bob@mail.example.org and ada@example.com."),
            ["ada@example.com", "bob@mail.example.org"]
        );
        assert_eq!(find_emails("mail <ops@acme.io>"), ["ops@acme.io"]);
        assert!(find_emails("email me at noone@localhost").is_empty());
        assert!(find_emails("see https://user@x.io").is_empty());
    }

    #[test]
    fn channels_start_with_a_hash() {
        assert_eq!(
            find_channel(&words("post hi to Slack #sales-team.")),
            Some("#sales-team".to_owned())
        );
        assert_eq!(find_channel(&words("post hi to # now")), None);
    }

    #[test]
    fn repositories_prefer_the_one_after_in() {
        assert_eq!(
            find_repo(&words("create an issue titled and/or in acme/app")),
            Some(("acme".to_owned(), "app".to_owned()))
        );
        assert_eq!(find_repo(&words("open 24/7 https://x.io/a/b")), None);
    }

    #[test]
    fn quotes_are_not_apostrophes() {
        assert_eq!(
            find_quoted("post 'don't panic' to slack"),
            Some("don't panic".to_owned())
        );
        assert_eq!(find_quoted("don't post to slack"), None);
        assert_eq!(find_quoted("say “hi there”"), Some("hi there".to_owned()));
    }
}
