//! Trigger phrases: webhooks, schedules, new GitHub issues and manual starts, at the
//! start of a clause ("when a webhook is received, …") or ending it ("… every day at 9am").

use super::schedule::{self, Schedule};
use super::text::{Word, find_repo};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TriggerSpec {
    Webhook,
    Schedule(Schedule),
    GithubIssues { repo: Option<(String, String)> },
    Manual,
}

/// Words that may follow the key word of an event phrase and still belong to it.
const EVENT_TAIL: &[&str] = &[
    "is",
    "are",
    "was",
    "gets",
    "get",
    "got",
    "received",
    "receive",
    "arrives",
    "arrive",
    "comes",
    "come",
    "hits",
    "in",
    "on",
    "for",
    "from",
    "to",
    "of",
    "at",
    "a",
    "an",
    "the",
    "my",
    "our",
    "new",
    "request",
    "requests",
    "call",
    "called",
    "opened",
    "created",
    "filed",
    "raised",
    "github",
    "repo",
    "repository",
    "button",
    "run",
    "it",
    "workflow",
];

/// Words that open an event phrase, and how many words they are.
pub(super) fn event_opener(words: &[Word]) -> Option<usize> {
    let lower = |i: usize| words.get(i).map_or("", |w| w.lower.as_str());
    match (lower(0), lower(1)) {
        ("when" | "whenever" | "once" | "on" | "upon", _) => Some(1),
        ("every" | "each", "time") | ("for", "each" | "every") => Some(2),
        _ => None,
    }
}

/// A trigger phrase at the start of `words`, with the number of words it took.
pub(super) fn at_start(words: &[Word]) -> Option<(TriggerSpec, usize)> {
    if let Some((found, used)) = schedule::parse(words) {
        return Some((TriggerSpec::Schedule(found), used));
    }
    if words.first()?.is("manually") {
        return Some((TriggerSpec::Manual, 1));
    }
    let opener = event_opener(words)?;
    let after = |i: usize| i >= opener;
    let position = |names: &[&str]| {
        words
            .iter()
            .enumerate()
            .position(|(i, w)| after(i) && names.iter().any(|n| w.lower.contains(n)))
    };
    let receive = position(&["receive", "arrive", "come", "hit", "get"]);
    let (spec, key) = if let Some(key) = position(&["webhook"]) {
        (TriggerSpec::Webhook, key)
    } else if let Some(key) = receive.and_then(|r| {
        words
            .iter()
            .enumerate()
            .position(|(i, w)| i > r && w.is_any(&["post", "request", "requests", "call"]))
    }) {
        (TriggerSpec::Webhook, key)
    } else if let Some(key) = position(&["issue"]).filter(|_| {
        words.iter().any(|w| {
            w.is_any(&[
                "new", "opened", "created", "filed", "raised", "opens", "creates", "files",
            ])
        })
    }) {
        (TriggerSpec::GithubIssues { repo: None }, key)
    } else if let Some(key) = words
        .iter()
        .position(|w| w.is_any(&["manually", "demand", "click", "press", "run"]))
    {
        (TriggerSpec::Manual, key)
    } else {
        return None;
    };
    // The phrase ends at the first word that is not part of it, so what follows (an
    // action, or words nobody maps) is read, or reported, on its own.
    let end = words
        .iter()
        .enumerate()
        .position(|(i, w)| {
            i > key && !w.is_any(EVENT_TAIL) && find_repo(std::slice::from_ref(w)).is_none()
        })
        .unwrap_or(words.len());
    let spec = match spec {
        TriggerSpec::GithubIssues { .. } => TriggerSpec::GithubIssues {
            repo: find_repo(&words[..end]),
        },
        other => other,
    };
    Some((spec, end))
}

/// A trigger phrase that ends `words` (after at least one other word), with where it
/// starts.
pub(super) fn trailing(words: &[Word]) -> Option<(usize, TriggerSpec)> {
    (1..words.len()).find_map(|start| {
        let opens = words[start].is_any(&[
            "every", "each", "daily", "hourly", "weekly", "monthly", "on", "when", "whenever",
        ]);
        if !opens {
            return None;
        }
        at_start(&words[start..])
            .filter(|(_, used)| start + used == words.len())
            .map(|(spec, _)| (start, spec))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Word> {
        super::super::text::split_clauses(text)
            .into_iter()
            .flatten()
            .collect()
    }

    #[test]
    fn webhook_phrases_end_before_the_action() {
        let w = words("when a webhook is received post hi to slack");
        assert_eq!(at_start(&w), Some((TriggerSpec::Webhook, 5)));
        let w = words("when I receive a POST request");
        assert_eq!(at_start(&w), Some((TriggerSpec::Webhook, 6)));
        let w = words("whenever I receive a POST");
        assert_eq!(at_start(&w), Some((TriggerSpec::Webhook, 5)));
        assert_eq!(at_start(&words("when an issue is closed")), None);
    }

    #[test]
    fn github_issue_phrases_carry_the_repository() {
        let w = words("when a new GitHub issue is opened in acme/app ask openai to summarise it");
        assert_eq!(
            at_start(&w),
            Some((
                TriggerSpec::GithubIssues {
                    repo: Some(("acme".into(), "app".into()))
                },
                9
            ))
        );
    }

    #[test]
    fn trailing_schedules_are_split_off() {
        let w = words("post hello to slack #general every day at 9am");
        let (start, spec) = trailing(&w).expect("a trailing schedule");
        assert_eq!(start, 5);
        assert!(matches!(spec, TriggerSpec::Schedule(s) if s.cron == "0 9 * * *"));
        assert_eq!(trailing(&words("post hello on slack")), None);
    }
}
