//! Action phrases: Slack messages, e-mails, HTTP calls, GitHub issues and OpenAI
//! completions, with what the clause says about them. Connections and references to
//! earlier steps are resolved later, by the planner, which knows the whole workflow.

use super::text::{
    Word, capitalised, find_channel, find_emails, find_quoted, find_repo, find_url, join, join_bare,
};

/// Text for a message, a subject or a title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TextSpec {
    Literal(String),
    /// "the summary", "it": the output of the step before.
    Previous,
    /// Nothing was said.
    Unsaid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    Slack {
        channel: Option<String>,
        text: TextSpec,
    },
    Email {
        to: Vec<String>,
        subject: Option<String>,
        text: TextSpec,
    },
    Http {
        method: &'static str,
        url: String,
    },
    GithubIssue {
        repo: Option<(String, String)>,
        title: TextSpec,
    },
    OpenAi {
        instruction: String,
    },
}

const REFERENCES: &[&str] = &[
    "it",
    "that",
    "this",
    "them",
    "the summary",
    "summary",
    "a summary",
    "the result",
    "the results",
    "the response",
    "the answer",
    "the output",
    "the reply",
    "the data",
    "the body",
    "the issue",
    "the new issue",
    "the link",
    "the issue link",
];

const EMPTY_TEXTS: &[&str] = &[
    "",
    "a message",
    "message",
    "a notification",
    "notification",
    "an alert",
    "alert",
    "a note",
    "an email",
    "email",
    "an e-mail",
    "a mail",
    "me",
    "us",
];

const MESSAGE_VERBS: &[&str] = &[
    "post", "send", "notify", "message", "say", "write", "tell", "share", "publish", "alert",
    "ping", "drop", "email", "e-mail", "mail",
];

/// The action a clause asks for, if it names one the planner knows.
pub(super) fn parse(words: &[Word]) -> Option<Action> {
    let text = join(words);
    let has = |names: &[&str]| words.iter().any(|w| w.is_any(names));
    let emails = find_emails(&text);
    if words.iter().any(|w| w.lower.starts_with("slack")) {
        return Some(slack(words, &text));
    }
    if !emails.is_empty() || has(&["email", "e-mail", "mail", "emails"]) {
        return Some(email(words, &text, emails));
    }
    if has(&["issue"]) && has(&["create", "open", "file", "raise", "add", "make"]) {
        return Some(Action::GithubIssue {
            repo: find_repo(words),
            title: github_title(words, &text),
        });
    }
    if has(&["openai", "gpt", "chatgpt", "llm", "ai"])
        || words.iter().any(|w| w.lower.starts_with("summar"))
    {
        return Some(openai(words));
    }
    find_url(&text).map(|url| Action::Http {
        method: http_method(words),
        url,
    })
}

fn slack(words: &[Word], text: &str) -> Action {
    let channel = find_channel(words);
    let target = words
        .iter()
        .position(|w| w.lower.starts_with("slack") || w.bare.starts_with('#'))
        .map(|mut at| {
            while at > 0 && words[at - 1].is_any(&["to", "in", "on", "into", "via", "the"]) {
                at -= 1;
            }
            at
        })
        .unwrap_or(words.len());
    Action::Slack {
        channel,
        text: message_text(words, text, target),
    }
}

/// The message of a clause: quoted text, what follows "saying", or what lies between
/// the verb and `target` (where the destination is named).
fn message_text(words: &[Word], text: &str, target: usize) -> TextSpec {
    if let Some(quoted) = find_quoted(text) {
        return TextSpec::Literal(quoted);
    }
    if let Some(saying) = words
        .iter()
        .position(|w| w.is_any(&["saying", "says", "reading"]))
    {
        let end = if target > saying { target } else { words.len() };
        return spec_of(&words[saying + 1..end]);
    }
    let Some(verb) = words.iter().position(|w| w.is_any(MESSAGE_VERBS)) else {
        return TextSpec::Unsaid;
    };
    if verb + 1 < target {
        return spec_of(&words[verb + 1..target]);
    }
    TextSpec::Unsaid
}

fn spec_of(words: &[Word]) -> TextSpec {
    let lower = words
        .iter()
        .map(|w| w.lower.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if EMPTY_TEXTS.contains(&lower.as_str()) {
        return TextSpec::Unsaid;
    }
    let reference = lower
        .strip_prefix("with ")
        .or_else(|| lower.strip_prefix("me "))
        .unwrap_or(&lower);
    if REFERENCES.contains(&reference) {
        return TextSpec::Previous;
    }
    TextSpec::Literal(join_bare(words))
}

fn email(words: &[Word], text: &str, to: Vec<String>) -> Action {
    let position = |names: &[&str]| words.iter().position(|w| w.is_any(names));
    let saying = position(&["saying", "says", "reading", "body"]);
    let subject_at = position(&["subject", "about", "titled"]);
    let subject = subject_at.and_then(|at| {
        let end = saying.filter(|s| *s > at).unwrap_or(words.len());
        let part = &words[at + 1..end];
        let quoted = find_quoted(&join(part));
        quoted
            .or_else(|| Some(join_bare(part)))
            .filter(|s| !s.is_empty())
    });
    let recipient = words
        .iter()
        .position(|w| w.is("to") || w.bare.contains('@'))
        .unwrap_or(words.len());
    let text = match saying {
        Some(at) => {
            let end = subject_at.filter(|s| *s > at).unwrap_or(words.len());
            let part = &words[at + 1..end];
            find_quoted(&join(part)).map_or_else(|| spec_of(part), TextSpec::Literal)
        }
        None if subject.is_none() => message_text(words, text, recipient),
        None => TextSpec::Unsaid,
    };
    Action::Email { to, subject, text }
}

fn github_title(words: &[Word], text: &str) -> TextSpec {
    if let Some(quoted) = find_quoted(text) {
        return TextSpec::Literal(quoted);
    }
    let Some(at) = words
        .iter()
        .position(|w| w.is_any(&["titled", "called", "named", "title"]))
    else {
        let with = words.iter().position(|w| w.is("with"));
        return with.map_or(TextSpec::Unsaid, |at| spec_of(&words[at + 1..]));
    };
    let end = words
        .iter()
        .enumerate()
        .position(|(i, w)| {
            i > at
                && w.is_any(&["in", "on", "for", "to"])
                && words
                    .get(i + 1)
                    .is_some_and(|next| find_repo(std::slice::from_ref(next)).is_some())
        })
        .unwrap_or(words.len());
    spec_of(&words[at + 1..end])
}

fn openai(words: &[Word]) -> Action {
    let model_at = words
        .iter()
        .position(|w| w.is_any(&["openai", "gpt", "chatgpt", "llm", "ai"]));
    let start = model_at
        .and_then(|at| {
            words
                .iter()
                .enumerate()
                .position(|(i, w)| i > at && w.is("to"))
        })
        .map(|to| to + 1)
        .or_else(|| words.iter().position(|w| w.lower.starts_with("summar")))
        .unwrap_or(0);
    // "summarise it with OpenAI": the model's name is not part of the instruction.
    let end = model_at
        .filter(|at| *at > start)
        .map(|at| {
            let by = at > 0 && words[at - 1].is_any(&["with", "using", "via", "by", "through"]);
            at - usize::from(by)
        })
        .unwrap_or(words.len());
    let instruction = join_bare(&words[start..end]);
    Action::OpenAi {
        instruction: capitalised(&instruction),
    }
}

fn http_method(words: &[Word]) -> &'static str {
    const EXPLICIT: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    if let Some(method) = words
        .iter()
        .find_map(|w| EXPLICIT.iter().find(|m| w.bare == **m))
    {
        return method;
    }
    words
        .iter()
        .find_map(|w| match w.lower.as_str() {
            "get" | "fetch" | "call" | "check" | "ping" | "hit" | "load" | "download" | "query"
            | "read" => Some("GET"),
            "post" | "send" | "submit" | "forward" | "push" | "notify" => Some("POST"),
            "put" | "replace" => Some("PUT"),
            "patch" | "update" => Some("PATCH"),
            "delete" | "remove" => Some("DELETE"),
            _ => None,
        })
        .unwrap_or("GET")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(text: &str) -> Option<Action> {
        let words: Vec<Word> = super::super::text::split_clauses(text)
            .into_iter()
            .flatten()
            .collect();
        parse(&words)
    }

    #[test]
    fn slack_messages() {
        assert_eq!(
            action("post hello world to Slack #general"),
            Some(Action::Slack {
                channel: Some("#general".into()),
                text: TextSpec::Literal("hello world".into())
            })
        );
        assert_eq!(
            action("post the summary to #ops on slack"),
            Some(Action::Slack {
                channel: Some("#ops".into()),
                text: TextSpec::Previous
            })
        );
        assert_eq!(
            action("notify slack #alerts saying 'disk is full'"),
            Some(Action::Slack {
                channel: Some("#alerts".into()),
                text: TextSpec::Literal("disk is full".into())
            })
        );
    }

    #[test]
    fn emails() {
        assert_eq!(
            action("send an email to ada@example.com saying the build broke"),
            Some(Action::Email {
                to: vec!["ada@example.com".into()],
                subject: None,
                text: TextSpec::Literal("the build broke".into())
            })
        );
        assert_eq!(
            action("email the summary to ada@example.com"),
            Some(Action::Email {
                to: vec!["ada@example.com".into()],
                subject: None,
                text: TextSpec::Previous
            })
        );
    }

    #[test]
    fn http_calls() {
        assert_eq!(
            action("POST to https://api.example.com/orders"),
            Some(Action::Http {
                method: "POST",
                url: "https://api.example.com/orders".into()
            })
        );
        assert_eq!(
            action("call https://api.example.com/health."),
            Some(Action::Http {
                method: "GET",
                url: "https://api.example.com/health".into()
            })
        );
    }

    #[test]
    fn github_issues_and_openai() {
        assert_eq!(
            action("create a GitHub issue in acme/app titled Deploy failed"),
            Some(Action::GithubIssue {
                repo: Some(("acme".into(), "app".into())),
                title: TextSpec::Literal("Deploy failed".into())
            })
        );
        assert_eq!(
            action("ask OpenAI to summarise the issue"),
            Some(Action::OpenAi {
                instruction: "Summarise the issue".into()
            })
        );
        assert_eq!(
            action("summarise it with OpenAI"),
            Some(Action::OpenAi {
                instruction: "Summarise it".into()
            })
        );
        assert_eq!(action("dance wildly"), None);
    }
}
