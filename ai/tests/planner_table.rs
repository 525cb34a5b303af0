//! The offline planner's table: prompts and the workflows they must produce.
//!
//! Invariants checked for every prompt: the definition passes the domain validator, the
//! same prompt gives the same plan, and every connection id in it is one of the
//! workspace's connections.

use aos_ai::planner::{ConnectionRef, Plan, plan};
use aos_domain::workflow::validate_definition;
use serde_json::{Value, json};

const SLACK: &str = "01936b2a-0000-7000-8000-000000000001";
const EMAIL: &str = "01936b2a-0000-7000-8000-000000000002";
const GITHUB: &str = "01936b2a-0000-7000-8000-000000000003";
const OPENAI: &str = "01936b2a-0000-7000-8000-000000000004";

fn connection(id: &str, connector: &str) -> ConnectionRef {
    ConnectionRef {
        id: id.to_owned(),
        name: format!("Team {connector}"),
        connector: connector.to_owned(),
    }
}

fn all_connections() -> Vec<ConnectionRef> {
    vec![
        connection(SLACK, "slack"),
        connection(EMAIL, "email"),
        connection(GITHUB, "github"),
        connection(OPENAI, "openai"),
    ]
}

fn connections_without(connector: &str) -> Vec<ConnectionRef> {
    all_connections()
        .into_iter()
        .filter(|c| c.connector != connector)
        .collect()
}

struct Case {
    prompt: &'static str,
    connections: Vec<ConnectionRef>,
    /// Node types in order.
    types: &'static [&'static str],
    /// JSON pointers into the definition and the values found there.
    values: Vec<(&'static str, Value)>,
    /// Every edge, as `(from, to, branch)`.
    edges: &'static [(&'static str, &'static str, Option<&'static str>)],
    /// Text each expected warning contains, in order; no other warning may appear.
    warnings: &'static [&'static str],
}

fn case(prompt: &'static str, types: &'static [&'static str]) -> Case {
    Case {
        prompt,
        connections: all_connections(),
        types,
        values: Vec::new(),
        edges: &[],
        warnings: &[],
    }
}

impl Case {
    fn with(mut self, pointer: &'static str, value: Value) -> Self {
        self.values.push((pointer, value));
        self
    }

    fn edges(
        mut self,
        edges: &'static [(&'static str, &'static str, Option<&'static str>)],
    ) -> Self {
        self.edges = edges;
        self
    }

    fn warns(mut self, warnings: &'static [&'static str]) -> Self {
        self.warnings = warnings;
        self
    }

    fn connections(mut self, connections: Vec<ConnectionRef>) -> Self {
        self.connections = connections;
        self
    }
}

fn table() -> Vec<Case> {
    vec![
        // Webhook triggers.
        case(
            "When a webhook is received, post hello to Slack #general",
            &["trigger.webhook", "connector"],
        )
        .with("/nodes/0/config/respond", json!("onCompletion"))
        .with("/nodes/1/id", json!("post_slack"))
        .with("/nodes/1/config/connector", json!("slack"))
        .with("/nodes/1/config/operation", json!("postMessage"))
        .with("/nodes/1/config/connectionId", json!(SLACK))
        .with("/nodes/1/config/params", json!({"channel": "#general", "text": "hello"}))
        .edges(&[("hook", "post_slack", None)]),
        case(
            "When I receive a POST request, send an email to ops@example.com saying New order",
            &["trigger.webhook", "connector"],
        )
        .with("/nodes/1/id", json!("send_email"))
        .with("/nodes/1/config/operation", json!("sendEmail"))
        .with("/nodes/1/config/connectionId", json!(EMAIL))
        .with("/nodes/1/config/params/to", json!("ops@example.com"))
        .with("/nodes/1/config/params/text", json!("New order"))
        .edges(&[("hook", "send_email", None)]),
        case(
            "When a webhook is received post hi to Slack #general and then send an email to x@example.com saying done",
            &["trigger.webhook", "connector", "connector"],
        )
        .with("/nodes/1/config/params/text", json!("hi"))
        .with("/nodes/2/config/params/text", json!("done"))
        .edges(&[("hook", "post_slack", None), ("post_slack", "send_email", None)]),
        case(
            "When a webhook is received, POST it to https://crm.example.com/leads",
            &["trigger.webhook", "http.request"],
        )
        .with("/nodes/1/id", json!("call_api"))
        .with("/nodes/1/config", json!({"method": "POST", "url": "https://crm.example.com/leads", "body": "{{ trigger.body }}"}))
        .edges(&[("hook", "call_api", None)]),
        case(
            "When a webhook is received, PUT https://api.example.com/items/1",
            &["trigger.webhook", "http.request"],
        )
        .with("/nodes/1/config/method", json!("PUT"))
        .with("/nodes/1/config/url", json!("https://api.example.com/items/1")),
        case(
            "When a webhook is received, post 'Order {{ trigger.body.id }} received' to Slack #orders",
            &["trigger.webhook", "connector"],
        )
        .with("/nodes/1/config/params/text", json!("Order {{ trigger.body.id }} received"))
        .with("/nodes/1/config/params/channel", json!("#orders")),
        case(
            "Whenever I get a webhook, respond with ok",
            &["trigger.webhook"],
        )
        .warns(&["Could not map \"respond with ok\"", "No step could be built"]),
        // Schedules.
        case(
            "Every day at 9am, post good morning to Slack #team",
            &["trigger.schedule", "connector"],
        )
        .with("/nodes/0/id", json!("schedule"))
        .with("/nodes/0/config", json!({"cron": "0 9 * * *", "timezone": "UTC"}))
        .with("/nodes/1/config/params/text", json!("good morning"))
        .edges(&[("schedule", "post_slack", None)]),
        case(
            "Every day at 17:30 call https://api.example.com/report",
            &["trigger.schedule", "http.request"],
        )
        .with("/nodes/0/config/cron", json!("30 17 * * *"))
        .with("/nodes/1/config", json!({"method": "GET", "url": "https://api.example.com/report"})),
        case(
            "daily: GET https://status.example.com/ping",
            &["trigger.schedule", "http.request"],
        )
        .with("/nodes/0/config/cron", json!("0 9 * * *"))
        .with("/nodes/1/config/method", json!("GET"))
        .warns(&["No time of day was given"]),
        case(
            "Every 5 minutes, fetch https://api.example.com/health",
            &["trigger.schedule", "http.request"],
        )
        .with("/nodes/0/config/cron", json!("*/5 * * * *"))
        .with("/nodes/1/config/url", json!("https://api.example.com/health")),
        case(
            "Every hour, POST to https://hooks.example.com/tick",
            &["trigger.schedule", "http.request"],
        )
        .with("/nodes/0/config/cron", json!("0 * * * *"))
        .with("/nodes/1/config", json!({"method": "POST", "url": "https://hooks.example.com/tick"})),
        case(
            "Every Monday at 8am, post the weekly report reminder to Slack #team",
            &["trigger.schedule", "connector"],
        )
        .with("/nodes/0/config/cron", json!("0 8 * * 1"))
        .with("/nodes/1/config/params/text", json!("the weekly report reminder")),
        case(
            "Every Monday send an email to boss@example.com about Weekly status",
            &["trigger.schedule", "connector"],
        )
        .with("/nodes/0/config/cron", json!("0 9 * * 1"))
        .with("/nodes/1/config/params/subject", json!("Weekly status"))
        .with("/nodes/1/config/params/text", json!("Scheduled run at {{ trigger.scheduledAt }}"))
        .warns(&["No time of day was given", "No e-mail text was given"]),
        case(
            "Every weekday at 8:30 post stand-up time to Slack #dev",
            &["trigger.schedule", "connector"],
        )
        .with("/nodes/0/config/cron", json!("30 8 * * 1-5")),
        case(
            "Every day at 9am in Europe/Paris, post bonjour to Slack #paris",
            &["trigger.schedule", "connector"],
        )
        .with("/nodes/0/config", json!({"cron": "0 9 * * *", "timezone": "Europe/Paris"})),
        case(
            "post hello to Slack #general every day at 9am",
            &["trigger.schedule", "connector"],
        )
        .with("/nodes/0/config/cron", json!("0 9 * * *"))
        .with("/nodes/1/config/params/text", json!("hello")),
        case(
            "On Fridays at 4pm, email team@example.com saying Weekend!",
            &["trigger.schedule", "connector"],
        )
        .with("/nodes/0/config/cron", json!("0 16 * * 5"))
        .with("/nodes/1/config/params/text", json!("Weekend")),
        case(
            "Every 2 hours call https://api.example.com/sync",
            &["trigger.schedule", "http.request"],
        )
        .with("/nodes/0/config/cron", json!("0 */2 * * *")),
        case(
            "Every day at 9am post hello to Slack #a every hour",
            &["trigger.schedule", "connector"],
        )
        .with("/nodes/0/config/cron", json!("0 9 * * *"))
        .warns(&["A workflow has one trigger: \"every hour\""]),
        case(
            "Every Monday and Thursday at 10am post hi to Slack #a",
            &["trigger.schedule", "connector"],
        )
        .with("/nodes/0/config/cron", json!("0 9 * * 1"))
        .warns(&["No time of day was given", "Could not map \"and Thursday at 10am\""]),
        case(
            "Every 30 seconds post ping to Slack #a",
            &["trigger.manual", "connector"],
        )
        .with("/nodes/1/config/params/text", json!("ping"))
        .warns(&["Could not map the trigger \"Every 30 seconds\""]),
        // GitHub issues.
        case(
            "When a new GitHub issue is opened in acme/app, post it to Slack #issues",
            &["trigger.poll", "connector"],
        )
        .with("/nodes/0/id", json!("new_issue"))
        .with(
            "/nodes/0/config",
            json!({"connector": "github", "trigger": "newIssues", "connectionId": GITHUB,
                   "params": {"owner": "acme", "repo": "app"}, "intervalSeconds": 60}),
        )
        .with(
            "/nodes/1/config/params/text",
            json!("New issue #{{ trigger.number }}: {{ trigger.title }} {{ trigger.htmlUrl }}"),
        )
        .edges(&[("new_issue", "post_slack", None)]),
        case(
            "When a new GitHub issue is opened in acme/app, post it to Slack #issues",
            &["trigger.manual", "connector"],
        )
        .connections(connections_without("github"))
        .warns(&["needs a GitHub connection", "refers to an earlier output"]),
        case(
            "When a new GitHub issue is opened, post it to Slack #issues",
            &["trigger.manual", "connector"],
        )
        .warns(&["Name the repository to watch", "refers to an earlier output"]),
        case(
            "When a new GitHub issue is opened in acme/app, ask OpenAI to summarise it, then post the summary to Slack #triage",
            &["trigger.poll", "connector", "connector"],
        )
        .with("/nodes/1/id", json!("ask_openai"))
        .with("/nodes/1/config/operation", json!("chatCompletion"))
        .with("/nodes/1/config/connectionId", json!(OPENAI))
        .with(
            "/nodes/1/config/params/messages/0/content",
            json!("Summarise it:\n\n{{ trigger.title }}\n\n{{ trigger.body }}"),
        )
        .with("/nodes/2/config/params/text", json!("{{ steps.ask_openai.content }}"))
        .edges(&[("new_issue", "ask_openai", None), ("ask_openai", "post_slack", None)]),
        // Conditions.
        case(
            "When a webhook is received, if the amount is over 100, post big order to Slack #sales",
            &["trigger.webhook", "if", "connector"],
        )
        .with("/nodes/1/id", json!("check_amount"))
        .with("/nodes/1/config/condition", json!("{{ trigger.body.amount > 100 }}"))
        .edges(&[("hook", "check_amount", None), ("check_amount", "post_slack", Some("true"))]),
        case(
            "When a webhook is received, if the status equals paid then email billing@example.com saying Paid",
            &["trigger.webhook", "if", "connector"],
        )
        .with("/nodes/1/config/condition", json!("{{ trigger.body.status == \"paid\" }}"))
        .edges(&[("hook", "check_status", None), ("check_status", "send_email", Some("true"))]),
        case(
            "When a webhook is received, if the amount is less than 10 post small to Slack #a otherwise post large to Slack #b",
            &["trigger.webhook", "if", "connector", "connector"],
        )
        .with("/nodes/1/config/condition", json!("{{ trigger.body.amount < 10 }}"))
        .with("/nodes/2/config/params/text", json!("small"))
        .with("/nodes/3/id", json!("post_slack_2"))
        .with("/nodes/3/config/params", json!({"channel": "#b", "text": "large"}))
        .edges(&[
            ("hook", "check_amount", None),
            ("check_amount", "post_slack", Some("true")),
            ("check_amount", "post_slack_2", Some("false")),
        ]),
        case(
            "Call https://api.example.com/orders then if the status is 200 post ok to Slack #ops",
            &["trigger.manual", "http.request", "if", "connector"],
        )
        .with("/nodes/2/config/condition", json!("{{ steps.call_api.status == 200 }}"))
        .edges(&[
            ("start", "call_api", None),
            ("call_api", "check_status", None),
            ("check_status", "post_slack", Some("true")),
        ]),
        case(
            "Post the order total to Slack #sales if the total is at least 50",
            &["trigger.manual", "if", "connector"],
        )
        .with("/nodes/1/config/condition", json!("{{ trigger.total >= 50 }}"))
        .with("/nodes/2/config/params/text", json!("the order total"))
        .edges(&[("start", "check_total", None), ("check_total", "post_slack", Some("true"))]),
        case(
            "When a webhook is received, only if priority is high then post it to Slack #urgent",
            &["trigger.webhook", "if", "connector"],
        )
        .with("/nodes/1/config/condition", json!("{{ trigger.body.priority == \"high\" }}"))
        .with("/nodes/2/config/params/text", json!("Webhook received: {{ trigger.body }}")),
        case(
            "If the amount is over 100 otherwise email a@example.com saying small",
            &["trigger.manual", "if", "connector"],
        )
        .edges(&[("start", "check_amount", None), ("check_amount", "send_email", Some("false"))]),
        // Actions without a trigger, and several actions.
        case(
            "Send an email to a@example.com and b@example.com saying hi",
            &["trigger.manual", "connector"],
        )
        .with("/nodes/1/config/params/to", json!(["a@example.com", "b@example.com"])),
        case(
            "Create a GitHub issue in acme/app titled Nightly build failed",
            &["trigger.manual", "connector"],
        )
        .with("/nodes/1/id", json!("create_issue"))
        .with(
            "/nodes/1/config",
            json!({"connector": "github", "operation": "createIssue", "connectionId": GITHUB,
                   "params": {"owner": "acme", "repo": "app", "title": "Nightly build failed"}}),
        ),
        case("Create a GitHub issue titled Broken", &["trigger.manual"])
            .warns(&["names no repository", "No step could be built"]),
        case(
            "Fetch https://news.example.com/feed.json, then ask OpenAI to summarise the result and email it to me@example.com",
            &["trigger.manual", "http.request", "connector", "connector"],
        )
        .with(
            "/nodes/2/config/params/messages/0/content",
            json!("Summarise the result:\n\n{{ steps.call_api.body }}"),
        )
        .with("/nodes/3/config/params/text", json!("{{ steps.ask_openai.content }}"))
        .edges(&[
            ("start", "call_api", None),
            ("call_api", "ask_openai", None),
            ("ask_openai", "send_email", None),
        ]),
        case("DELETE https://api.example.com/cache", &["trigger.manual", "http.request"])
            .with("/nodes/1/config", json!({"method": "DELETE", "url": "https://api.example.com/cache"})),
        case(
            "Manually, post hello to Slack #general",
            &["trigger.manual", "connector"],
        ),
        case("post hello to Slack", &["trigger.manual", "connector"])
            .with("/nodes/1/config/params/channel", json!("#general"))
            .warns(&["No Slack channel was named"]),
        case(
            "Post to Slack #general when a webhook is received",
            &["trigger.webhook", "connector"],
        )
        .with("/nodes/1/config/params/text", json!("Webhook received: {{ trigger.body }}"))
        .warns(&["No Slack message was given"]),
        case(
            "Every day at 9am post the date to slack #a and email it to a@example.com",
            &["trigger.schedule", "connector", "connector"],
        )
        .with("/nodes/1/config/params/text", json!("the date"))
        .with("/nodes/2/config/params/text", json!("the date"))
        .edges(&[("schedule", "post_slack", None), ("post_slack", "send_email", None)]),
        case(
            "when a new issue is created in acme/app summarise it with openai and email the summary to dev@example.com",
            &["trigger.poll", "connector", "connector"],
        )
        .with(
            "/nodes/1/config/params/messages/0/content",
            json!("Summarise it:\n\n{{ trigger.title }}\n\n{{ trigger.body }}"),
        )
        .with("/nodes/2/config/params/subject", json!("New issue: {{ trigger.title }}"))
        .with("/nodes/2/config/params/text", json!("{{ steps.ask_openai.content }}")),
        case(
            "On new GitHub issues in acme/app, create a GitHub issue in acme/mirror titled the issue",
            &["trigger.poll", "connector"],
        )
        .with("/nodes/1/config/params/repo", json!("mirror"))
        .with(
            "/nodes/1/config/params/title",
            json!("New issue #{{ trigger.number }}: {{ trigger.title }} {{ trigger.htmlUrl }}"),
        ),
        // Missing connections and details: warnings, never invalid steps.
        case(
            "When a webhook is received, post hello to Slack #general",
            &["trigger.webhook"],
        )
        .connections(Vec::new())
        .warns(&["needs a Slack connection", "No step could be built"]),
        case(
            "Ask OpenAI to summarise the news then post it to Slack #news",
            &["trigger.manual", "connector"],
        )
        .connections(connections_without("openai"))
        .with("/nodes/1/config/params/text", json!("Run {{ run.id }} of AutomationOS"))
        .warns(&["needs an OpenAI connection", "refers to an earlier output"]),
        case("Send an email saying hello", &["trigger.manual"])
            .warns(&["names no e-mail address", "No step could be built"]),
        case(
            "When a webhook is received, post 'Total {{ trigger.body. }}' to Slack #orders",
            &["trigger.webhook"],
        )
        .warns(&["Left out step `post_slack`"]),
        // Unknown triggers and garbage.
        case(
            "When someone submits the form, email sales@example.com saying New lead",
            &["trigger.manual", "connector"],
        )
        .with("/nodes/1/config/params/text", json!("New lead"))
        .warns(&["Could not map the trigger \"When someone submits the form\""]),
        case(
            "When the moon is full, post hi to Slack #a",
            &["trigger.manual", "connector"],
        )
        .warns(&["Could not map the trigger \"When the moon is full\""]),
        case("make me a sandwich", &["trigger.manual"])
            .warns(&["Could not map \"make me a sandwich\"", "No step could be built"]),
        case("", &["trigger.manual"]).warns(&["The prompt is empty"]),
        case("asdf qwerty zxcv", &["trigger.manual"])
            .warns(&["Could not map \"asdf qwerty zxcv\"", "No step could be built"]),
    ]
}

fn edges_of(definition: &Value) -> Vec<(String, String, Option<String>)> {
    definition["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["from"].as_str().unwrap_or_default().to_owned(),
                e["to"].as_str().unwrap_or_default().to_owned(),
                e.get("branch").and_then(Value::as_str).map(str::to_owned),
            )
        })
        .collect()
}

fn connection_ids(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                if key == "connectionId" {
                    found.push(field.as_str().unwrap_or_default().to_owned());
                }
                connection_ids(field, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| connection_ids(item, found)),
        _ => {}
    }
}

fn check_invariants(prompt: &str, connections: &[ConnectionRef], planned: &Plan) {
    if let Err(problems) = validate_definition(&planned.definition) {
        panic!("{prompt:?}: the plan does not validate: {problems:?}");
    }
    assert_eq!(
        &plan(prompt, connections),
        planned,
        "{prompt:?}: the same prompt must give the same plan"
    );
    let mut ids = Vec::new();
    connection_ids(&planned.definition, &mut ids);
    for id in ids {
        assert!(
            connections.iter().any(|c| c.id == id),
            "{prompt:?}: connection id {id} is not one of the workspace's"
        );
    }
    assert!(
        !planned.explanation.is_empty(),
        "{prompt:?}: no explanation"
    );
}

/// What is wrong with one case's plan; empty when it is right.
fn mismatches(case: &Case) -> Vec<String> {
    let planned = plan(case.prompt, &case.connections);
    check_invariants(case.prompt, &case.connections, &planned);
    let mut wrong = Vec::new();
    let types: Vec<&str> = planned.definition["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["type"].as_str().unwrap_or_default())
        .collect();
    if types != case.types {
        wrong.push(format!("node types {types:?}, expected {:?}", case.types));
    }
    for (pointer, expected) in &case.values {
        let found = planned.definition.pointer(pointer);
        if found != Some(expected) {
            wrong.push(format!("{pointer} is {found:?}, expected {expected}"));
        }
    }
    let expected_edges: Vec<(String, String, Option<String>)> = case
        .edges
        .iter()
        .map(|(f, t, b)| ((*f).to_owned(), (*t).to_owned(), b.map(str::to_owned)))
        .collect();
    let edges = edges_of(&planned.definition);
    if !case.edges.is_empty() && edges != expected_edges {
        wrong.push(format!("edges {edges:?}, expected {expected_edges:?}"));
    }
    let warnings_match = planned.warnings.len() == case.warnings.len()
        && planned
            .warnings
            .iter()
            .zip(case.warnings)
            .all(|(warning, expected)| warning.contains(expected));
    if !warnings_match {
        wrong.push(format!(
            "warnings {:?}, expected ones containing {:?}",
            planned.warnings, case.warnings
        ));
    }
    wrong
}

#[test]
fn table_prompts_produce_their_workflows() {
    let table = table();
    assert!(table.len() >= 40, "the table has {} prompts", table.len());
    let failures: Vec<String> = table
        .iter()
        .filter_map(|case| {
            let wrong = mismatches(case);
            (!wrong.is_empty()).then(|| format!("{:?}:\n  {}", case.prompt, wrong.join("\n  ")))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} prompts planned wrong:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[test]
fn garbage_gives_a_manual_trigger_with_warnings() {
    let prompts = [
        "hello?",
        "!!! ??? ...",
        "the quick brown fox jumps over the lazy dog",
        "{{ }} {{",
        "when",
        "every",
        "if",
        "post",
        "ΣΣΣ ✨ 日本語",
        "x@",
    ];
    for prompt in prompts {
        let planned = plan(prompt, &all_connections());
        check_invariants(prompt, &all_connections(), &planned);
        let nodes = planned.definition["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(nodes.len(), 1, "{prompt:?}: {planned:#?}");
        assert_eq!(nodes[0]["type"], "trigger.manual", "{prompt:?}");
        assert!(!planned.warnings.is_empty(), "{prompt:?}: no warning");
    }
}

#[test]
fn connections_with_ids_that_are_not_connection_ids_are_not_used() {
    let connections = vec![
        connection("not-a-uuid", "slack"),
        connection(SLACK, "slack"),
    ];
    let planned = plan("post hi to Slack #a", &connections);
    check_invariants("post hi to Slack #a", &connections, &planned);
    assert_eq!(
        planned.definition["nodes"][1]["config"]["connectionId"],
        SLACK
    );
}

#[test]
fn the_explanation_describes_the_workflow() {
    let prompt =
        "When a webhook is received, if the amount is over 100, post big order to Slack #sales";
    let planned = plan(prompt, &all_connections());
    check_invariants(prompt, &all_connections(), &planned);
    assert_eq!(
        planned.explanation,
        "When a webhook is received, this workflow checks whether trigger.body.amount > 100, then posts a message to Slack #sales."
    );
}

/// Half-written prompts are what an editor sends while the user types: each must still
/// give a valid plan, with and without connections.
#[test]
fn every_prefix_of_every_table_prompt_plans_validly() {
    for case in table() {
        let words: Vec<&str> = case.prompt.split_whitespace().collect();
        for end in 0..=words.len() {
            let prompt = words[..end].join(" ");
            for connections in [all_connections(), Vec::new()] {
                let planned = plan(&prompt, &connections);
                check_invariants(&prompt, &connections, &planned);
            }
        }
    }
}
