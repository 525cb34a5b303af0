//! The offline planner: a deterministic prompt-to-workflow planner for the common shapes,
//! used when no model is configured.
//!
//! Policy: what it returns always passes `validate_definition` (checked last, in
//! `graph`), and nothing of the prompt is dropped silently: every fragment it could not
//! map, every step it had to leave out (no connection, no recipient) and every default it
//! chose (a time of day) is a warning. Connection ids come only from the connections it
//! is given, and only ids that are connection ids; it is never given secrets.
//!
//! The prompt is cut into clauses (`text`), each read as a trigger (`triggers`,
//! `schedule`), a condition (`condition`) or an action (`actions`); the steps are chained
//! in the order written, and steps after a condition go on its `true` branch ("otherwise"
//! switches to `false`).

mod actions;
mod condition;
mod graph;
mod schedule;
mod text;
mod triggers;

use aos_domain::ids::ConnectionId;
use serde::Serialize;
use serde_json::{Value, json};

use actions::{Action, TextSpec};
use condition::Condition;
use graph::Graph;
use text::Word;
use triggers::TriggerSpec;

/// A connection of the workspace, as the planner may see it: never its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRef {
    pub id: String,
    pub name: String,
    /// The connector's registry key (`slack`, `github`, …).
    pub connector: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub definition: Value,
    pub explanation: String,
    pub warnings: Vec<String>,
}

/// The model the planner asks when a prompt wants OpenAI: small and cheap, and the user
/// changes it in the editor.
const OPENAI_MODEL: &str = "gpt-4o-mini";

pub fn plan(prompt: &str, connections: &[ConnectionRef]) -> Plan {
    let mut pieces = Vec::new();
    for clause in text::split_clauses(prompt) {
        interpret(&clause, &mut pieces);
    }
    Planner::new(connections).build(prompt, pieces)
}

enum Piece {
    Trigger(TriggerSpec, String),
    Condition(Condition),
    Otherwise,
    Action(Action, String),
    Unmapped(String),
    UnmappedTrigger(String),
}

/// Words before an action's verb that ask nothing of the workflow.
const POLITE: &[&str] = &[
    "i", "we", "want", "you", "to", "need", "should", "please", "can", "could", "would", "like",
    "and", "also", "then", "just",
];

/// Reads one clause into pieces, in the order the workflow should run them.
fn interpret(words: &[Word], pieces: &mut Vec<Piece>) {
    let Some(first) = words.first() else {
        return;
    };
    if first.is_any(&["otherwise", "else"]) {
        pieces.push(Piece::Otherwise);
        return interpret(&words[1..], pieces);
    }
    if first.is("if") || (first.is("only") && words.get(1).is_some_and(|w| w.is("if"))) {
        match condition::parse(words) {
            Some((found, used)) => {
                pieces.push(Piece::Condition(found));
                interpret(&words[used..], pieces);
            }
            None => pieces.push(Piece::Unmapped(text::join(words))),
        }
        return;
    }
    if let Some((spec, used)) = triggers::at_start(words) {
        pieces.push(Piece::Trigger(spec, text::join(&words[..used])));
        return interpret(&words[used..], pieces);
    }
    let opens_trigger = triggers::event_opener(words).is_some()
        || first.is_any(&["every", "each", "daily", "hourly", "weekly", "monthly"]);
    if opens_trigger {
        let verb = words
            .iter()
            .position(|w| w.is_any(text::ACTION_VERBS) || w.is("if"))
            .unwrap_or(words.len());
        pieces.push(Piece::UnmappedTrigger(text::join(&words[..verb])));
        return interpret(&words[verb..], pieces);
    }
    let mut body = words;
    if let Some((start, spec)) = triggers::trailing(words) {
        pieces.push(Piece::Trigger(spec, text::join(&words[start..])));
        body = &words[..start];
    }
    // "post it to Slack if the amount is over 100": the condition runs first.
    if let Some(start) = (1..body.len()).find(|&i| {
        body[i].is("if")
            && condition::parse(&body[i..]).is_some_and(|(_, used)| i + used == body.len())
    }) {
        interpret(&body[start..], pieces);
        body = &body[..start];
    }
    if let Some(verb) = body.iter().position(|w| w.is_any(text::ACTION_VERBS))
        && body[..verb].iter().any(|w| !w.is_any(POLITE))
    {
        pieces.push(Piece::Unmapped(text::join(&body[..verb])));
        body = &body[verb..];
    }
    match actions::parse(body) {
        Some(action) => pieces.push(Piece::Action(action, text::join(body))),
        None => pieces.push(Piece::Unmapped(text::join(body))),
    }
}

/// What the trigger outputs, which decides how later steps read it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Manual,
    Webhook,
    Schedule,
    GithubIssue,
}

/// A step already in the graph, which "it" and "the summary" refer to.
#[derive(Clone)]
struct Step {
    id: String,
    /// A template of its main output, if it has one worth passing on.
    output: Option<String>,
    /// A path under which its fields are read by a condition.
    fields: Option<String>,
}

struct Planner<'c> {
    connections: &'c [ConnectionRef],
    graph: Graph,
    warnings: Vec<String>,
    source: Source,
    /// Where the next step hangs: a node and the branch of the edge to it.
    cursor: (String, Option<&'static str>),
    last_condition: Option<String>,
    previous: Option<Step>,
    described: Vec<String>,
    otherwise_pending: bool,
}

impl<'c> Planner<'c> {
    fn new(connections: &'c [ConnectionRef]) -> Self {
        Self {
            connections,
            graph: Graph::default(),
            warnings: Vec::new(),
            source: Source::Manual,
            cursor: (String::new(), None),
            last_condition: None,
            previous: None,
            described: Vec::new(),
            otherwise_pending: false,
        }
    }

    fn build(mut self, prompt: &str, pieces: Vec<Piece>) -> Plan {
        let mut triggers = pieces.iter().filter_map(|p| match p {
            Piece::Trigger(spec, fragment) => Some((spec, fragment)),
            _ => None,
        });
        let chosen = triggers.next();
        for (_, fragment) in triggers {
            self.warnings.push(format!(
                "A workflow has one trigger: \"{fragment}\" was not used."
            ));
        }
        let start = self.add_trigger(chosen.map(|(spec, _)| spec));
        self.cursor = (start.0.clone(), None);
        for piece in &pieces {
            match piece {
                Piece::Trigger(..) => {}
                Piece::Condition(found) => self.add_condition(found),
                Piece::Otherwise => self.otherwise(),
                Piece::Action(action, fragment) => self.add_action(action, fragment),
                Piece::Unmapped(fragment) => self.warnings.push(format!(
                    "Could not map \"{fragment}\" to a step; add it by hand."
                )),
                Piece::UnmappedTrigger(fragment) => self.warnings.push(format!(
                    "Could not map the trigger \"{fragment}\"; without another trigger the workflow starts by hand."
                )),
            }
        }
        if prompt.trim().is_empty() {
            self.warnings
                .push("The prompt is empty: the workflow only has a manual trigger.".to_owned());
        } else if self.graph.step_count() == 0 {
            self.warnings
                .push("No step could be built: the workflow only has its trigger.".to_owned());
        }
        let mut warnings = self.warnings;
        let definition = self.graph.into_valid(&mut warnings);
        let steps = if self.described.is_empty() {
            "does nothing yet".to_owned()
        } else {
            self.described.join(", then ")
        };
        let mut explanation = format!("{}, this workflow {steps}.", start.1);
        if !warnings.is_empty() {
            explanation.push_str(" Some of the prompt needs your attention: see the warnings.");
        }
        Plan {
            definition,
            explanation,
            warnings,
        }
    }

    /// Adds the trigger node; returns its id and a description ("When …").
    fn add_trigger(&mut self, spec: Option<&TriggerSpec>) -> (String, String) {
        match spec {
            Some(TriggerSpec::Webhook) => {
                self.source = Source::Webhook;
                let id = self.graph.add(
                    "hook",
                    "trigger.webhook",
                    json!({"respond": "onCompletion"}),
                );
                (id, "When a webhook is received".to_owned())
            }
            Some(TriggerSpec::Schedule(found)) => {
                self.source = Source::Schedule;
                if found.defaulted_time {
                    self.warnings.push(format!(
                        "No time of day was given: the schedule fires at {:02}:{:02} ({}).",
                        schedule::DEFAULT_TIME.0,
                        schedule::DEFAULT_TIME.1,
                        found.timezone
                    ));
                }
                let id = self.graph.add(
                    "schedule",
                    "trigger.schedule",
                    json!({"cron": found.cron, "timezone": found.timezone}),
                );
                (id, text::capitalised(&found.description))
            }
            Some(TriggerSpec::GithubIssues { repo }) => self.add_github_trigger(repo.as_ref()),
            Some(TriggerSpec::Manual) | None => self.manual_trigger(),
        }
    }

    fn manual_trigger(&mut self) -> (String, String) {
        self.source = Source::Manual;
        let id = self.graph.add("start", "trigger.manual", json!({}));
        (id, "When started by hand".to_owned())
    }

    fn add_github_trigger(&mut self, repo: Option<&(String, String)>) -> (String, String) {
        let Some(connection) = self.connection("github") else {
            self.warnings.push(
                "Watching GitHub issues needs a GitHub connection: create one and add a `trigger.poll` on `github`/`newIssues`; the workflow starts by hand until then."
                    .to_owned(),
            );
            return self.manual_trigger();
        };
        let Some((owner, name)) = repo else {
            self.warnings.push(
                "Name the repository to watch as owner/repo (\"in acme/app\"); the workflow starts by hand until then."
                    .to_owned(),
            );
            return self.manual_trigger();
        };
        self.source = Source::GithubIssue;
        let config = json!({
            "connector": "github",
            "trigger": "newIssues",
            "connectionId": connection.id.trim(),
            "params": {"owner": owner, "repo": name},
            "intervalSeconds": 60,
        });
        let id = self.graph.add("new_issue", "trigger.poll", config);
        (id, format!("When a new issue is opened in {owner}/{name}"))
    }

    /// The first connection of a connector whose id is a connection id.
    fn connection(&self, connector: &str) -> Option<&'c ConnectionRef> {
        self.connections
            .iter()
            .find(|c| c.connector == connector && c.id.trim().parse::<ConnectionId>().is_ok())
    }

    fn add_condition(&mut self, found: &Condition) {
        let field = found.field.join(".");
        let path = match (&self.previous, self.source) {
            (
                Some(Step {
                    fields: Some(fields),
                    ..
                }),
                _,
            ) => {
                if matches!(field.as_str(), "status" | "status_code") {
                    format!("{fields}.status")
                } else {
                    format!("{fields}.body.{field}")
                }
            }
            (_, Source::Webhook) => format!("trigger.body.{field}"),
            _ => format!("trigger.{field}"),
        };
        let check = format!("{path} {} {}", found.operator, found.value);
        let base: String = format!("check_{}", found.field.join("_").to_lowercase())
            .chars()
            .take(40)
            .collect();
        let id = self.graph.add(
            &base,
            "if",
            json!({"condition": format!("{{{{ {check} }}}}")}),
        );
        self.link(&id);
        self.describe(format!("checks whether {check}"));
        self.cursor = (id.clone(), Some("true"));
        self.last_condition = Some(id);
    }

    fn otherwise(&mut self) {
        match &self.last_condition {
            Some(id) => {
                self.cursor = (id.clone(), Some("false"));
                self.otherwise_pending = true;
            }
            None => self.warnings.push(
                "\"Otherwise\" follows no condition: the step after it runs in line.".to_owned(),
            ),
        }
    }

    fn link(&mut self, id: &str) {
        let (from, branch) = self.cursor.clone();
        self.graph.connect(&from, id, branch);
        self.cursor = (id.to_owned(), None);
    }

    fn describe(&mut self, what: String) {
        if std::mem::take(&mut self.otherwise_pending) {
            self.described.push(format!("otherwise {what}"));
        } else {
            self.described.push(what);
        }
    }

    fn add_action(&mut self, action: &Action, fragment: &str) {
        match action {
            Action::Slack { channel, text } => self.add_slack(channel.as_deref(), text, fragment),
            Action::Email { to, subject, text } => {
                self.add_email(to, subject.as_deref(), text, fragment);
            }
            Action::Http { method, url } => self.add_http(method, url),
            Action::GithubIssue { repo, title } => {
                self.add_github_issue(repo.as_ref(), title, fragment);
            }
            Action::OpenAi { instruction } => self.add_openai(instruction, fragment),
        }
    }

    /// A connector step's connection, or a warning that the step was left out.
    fn require(&mut self, connector: &str, label: &str, fragment: &str) -> Option<String> {
        let found = self.connection(connector).map(|c| c.id.trim().to_owned());
        if found.is_none() {
            self.warnings.push(format!(
                "\"{fragment}\" needs {label} connection: create one and add the step; it was left out."
            ));
        }
        found
    }

    /// Message text: what was said, else the step before's output, else the trigger's.
    fn text_of(&mut self, spec: &TextSpec, what: &str) -> String {
        match spec {
            TextSpec::Literal(text) => text.clone(),
            TextSpec::Previous | TextSpec::Unsaid => {
                if let Some(output) = self.previous.as_ref().and_then(|p| p.output.clone()) {
                    return output;
                }
                // "Post it" after a webhook or a new issue means the trigger's data; after
                // a schedule or a manual start there is nothing it can mean.
                let (text, meaningful) = match self.source {
                    Source::GithubIssue => (
                        "New issue #{{ trigger.number }}: {{ trigger.title }} {{ trigger.htmlUrl }}",
                        true,
                    ),
                    Source::Webhook => ("Webhook received: {{ trigger.body }}", true),
                    Source::Schedule => ("Scheduled run at {{ trigger.scheduledAt }}", false),
                    Source::Manual => ("Run {{ run.id }} of AutomationOS", false),
                };
                if *spec == TextSpec::Unsaid && self.source != Source::GithubIssue {
                    self.warnings.push(format!(
                        "No {what} was given: \"{text}\" is used; change it in the editor."
                    ));
                } else if !meaningful {
                    self.warnings.push(format!(
                        "The {what} refers to an earlier output, but no earlier step has one: \"{text}\" is used; change it in the editor."
                    ));
                }
                text.to_owned()
            }
        }
    }

    fn add_slack(&mut self, channel: Option<&str>, text: &TextSpec, fragment: &str) {
        let Some(connection) = self.require("slack", "a Slack", fragment) else {
            return;
        };
        let channel = channel.map(str::to_owned).unwrap_or_else(|| {
            self.warnings
                .push("No Slack channel was named (\"#channel\"): #general is used.".to_owned());
            "#general".to_owned()
        });
        let message = self.text_of(text, "Slack message");
        let id = self.graph.add(
            "post_slack",
            "connector",
            json!({
                "connector": "slack",
                "operation": "postMessage",
                "connectionId": connection,
                "params": {"channel": channel, "text": message},
            }),
        );
        self.link(&id);
        self.describe(format!("posts a message to Slack {channel}"));
        // "…and e-mail it": the next step passes the same text on.
        self.previous = Some(Step {
            id,
            output: Some(message),
            fields: None,
        });
    }

    fn add_email(&mut self, to: &[String], subject: Option<&str>, text: &TextSpec, fragment: &str) {
        if to.is_empty() {
            self.warnings.push(format!(
                "\"{fragment}\" names no e-mail address: the step was left out."
            ));
            return;
        }
        let Some(connection) = self.require("email", "an e-mail (SMTP)", fragment) else {
            return;
        };
        let subject = match (subject, self.source) {
            (Some(subject), _) => subject.to_owned(),
            (None, Source::GithubIssue) => "New issue: {{ trigger.title }}".to_owned(),
            (None, _) => "Message from AutomationOS".to_owned(),
        };
        let body = self.text_of(text, "e-mail text");
        let recipients = if let [one] = to {
            json!(one)
        } else {
            json!(to)
        };
        let id = self.graph.add(
            "send_email",
            "connector",
            json!({
                "connector": "email",
                "operation": "sendEmail",
                "connectionId": connection,
                "params": {"to": recipients, "subject": subject, "text": body},
            }),
        );
        self.link(&id);
        self.describe(format!("sends an e-mail to {}", to.join(", ")));
        self.previous = Some(Step {
            id,
            output: Some(body),
            fields: None,
        });
    }

    fn add_http(&mut self, method: &str, url: &str) {
        let mut config = json!({"method": method, "url": url});
        if matches!(method, "POST" | "PUT" | "PATCH") {
            let body = match (&self.previous, self.source) {
                (Some(Step { id, .. }), _) => Some(format!("{{{{ steps.{id} }}}}")),
                (None, Source::Webhook) => Some("{{ trigger.body }}".to_owned()),
                (None, Source::GithubIssue | Source::Manual) => Some("{{ trigger }}".to_owned()),
                (None, Source::Schedule) => None,
            };
            if let Some(body) = body {
                config["body"] = json!(body);
            }
        }
        let id = self.graph.add("call_api", "http.request", config);
        self.link(&id);
        self.describe(format!("sends {method} {url}"));
        self.previous = Some(Step {
            output: Some(format!("{{{{ steps.{id}.body }}}}")),
            fields: Some(format!("steps.{id}")),
            id,
        });
    }

    fn add_github_issue(
        &mut self,
        repo: Option<&(String, String)>,
        title: &TextSpec,
        fragment: &str,
    ) {
        let Some((owner, name)) = repo else {
            self.warnings.push(format!(
                "\"{fragment}\" names no repository (owner/repo): the step was left out."
            ));
            return;
        };
        let Some(connection) = self.require("github", "a GitHub", fragment) else {
            return;
        };
        let title = self.text_of(title, "issue title");
        let id = self.graph.add(
            "create_issue",
            "connector",
            json!({
                "connector": "github",
                "operation": "createIssue",
                "connectionId": connection,
                "params": {"owner": owner, "repo": name, "title": title},
            }),
        );
        self.link(&id);
        self.describe(format!("creates a GitHub issue in {owner}/{name}"));
        self.previous = Some(Step {
            output: Some(format!("{{{{ steps.{id}.htmlUrl }}}}")),
            fields: None,
            id,
        });
    }

    fn add_openai(&mut self, instruction: &str, fragment: &str) {
        let Some(connection) = self.require("openai", "an OpenAI", fragment) else {
            return;
        };
        let input = match (&self.previous, self.source) {
            (
                Some(Step {
                    output: Some(output),
                    ..
                }),
                _,
            ) => Some(output.clone()),
            (_, Source::GithubIssue) => {
                Some("{{ trigger.title }}\n\n{{ trigger.body }}".to_owned())
            }
            (_, Source::Webhook) => Some("{{ trigger.body }}".to_owned()),
            (_, Source::Manual) => Some("{{ trigger }}".to_owned()),
            (_, Source::Schedule) => None,
        };
        let instruction = if instruction.is_empty() {
            "Summarise the following"
        } else {
            instruction
        };
        let content = match input {
            Some(input) => format!("{instruction}:\n\n{input}"),
            None => instruction.to_owned(),
        };
        let id = self.graph.add(
            "ask_openai",
            "connector",
            json!({
                "connector": "openai",
                "operation": "chatCompletion",
                "connectionId": connection,
                "params": {
                    "model": OPENAI_MODEL,
                    "messages": [{"role": "user", "content": content}],
                },
            }),
        );
        self.link(&id);
        self.describe(format!("asks OpenAI: \"{instruction}\""));
        self.previous = Some(Step {
            output: Some(format!("{{{{ steps.{id}.content }}}}")),
            fields: None,
            id,
        });
    }
}
