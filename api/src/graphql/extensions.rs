//! Guards and instruments around every GraphQL operation.
//!
//! - `DocumentLimits`: async-graphql limits depth and complexity but not aliases, and
//!   aliases are how one small query asks for the same expensive field hundreds of times;
//!   it also refuses fragment bombs before validation would expand them.
//! - `ErrorCodes`: parse and validation errors come from async-graphql without a code;
//!   the contract promises every error one.
//! - `Metrics`: request counts and latency per operation. The label is the operation type
//!   and its first root field, not the client's operation name: a client-chosen label
//!   would let anyone grow the metrics without bound.
//! - `AuditLog`: records every root mutation field in the audit log (`crate::audit`),
//!   around its resolution, so no mutation can leave itself out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextResolve,
    ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Response, ServerError, ServerResult, Value, Variables};

use crate::audit::{self, Notes, Resolved};
use crate::error::BAD_USER_INPUT;
use crate::graphql::RequestCtx;
use crate::state::AppState;

/// Limits on the shape of a document, checked right after parsing and before
/// async-graphql's validation: validation and complexity analysis walk every fragment
/// spread, so a document whose fragments spread each other twice per level (a "fragment
/// bomb") costs exponential time there. Here each fragment is sized once (memoised), so
/// the check is linear in the document.
pub struct DocumentLimits {
    pub max_aliases: usize,
    pub max_expanded_fields: usize,
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimitsExtension {
            max_aliases: self.max_aliases,
            max_expanded_fields: self.max_expanded_fields,
        })
    }
}

struct DocumentLimitsExtension {
    max_aliases: usize,
    max_expanded_fields: usize,
}

#[async_trait::async_trait]
impl Extension for DocumentLimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases: usize = document
            .operations
            .iter()
            .map(|(_, op)| count_aliases(&op.node.selection_set.node))
            .sum::<usize>()
            + document
                .fragments
                .values()
                .map(|f| count_aliases(&f.node.selection_set.node))
                .sum::<usize>();
        if aliases > self.max_aliases {
            return Err(refusal(format!(
                "the query uses {aliases} aliases; at most {} are allowed",
                self.max_aliases
            )));
        }
        let mut sizer = ExpansionSizer {
            document: &document,
            sizes: HashMap::new(),
            cap: self.max_expanded_fields,
        };
        for (_, operation) in document.operations.iter() {
            match sizer.selection_set(&operation.node.selection_set.node) {
                Expansion::Fields(_) => {}
                Expansion::TooLarge => {
                    return Err(refusal(format!(
                        "the query expands to more than {} fields once its fragments are spread",
                        self.max_expanded_fields
                    )));
                }
                Expansion::Cycle(name) => {
                    return Err(refusal(format!("fragment `{name}` spreads itself")));
                }
            }
        }
        Ok(document)
    }
}

fn refusal(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", BAD_USER_INPUT);
    error
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[derive(Clone, Copy)]
enum Expansion<'a> {
    Fields(usize),
    TooLarge,
    Cycle(&'a str),
}

enum Sizing {
    InProgress,
    Done(usize),
}

struct ExpansionSizer<'a> {
    document: &'a ExecutableDocument,
    sizes: HashMap<&'a str, Sizing>,
    cap: usize,
}

impl<'a> ExpansionSizer<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet) -> Expansion<'a> {
        let mut total = 0usize;
        for item in &set.items {
            let size = match &item.node {
                Selection::Field(field) => match self.selection_set(&field.node.selection_set.node)
                {
                    Expansion::Fields(inner) => inner.saturating_add(1),
                    other => return other,
                },
                Selection::InlineFragment(fragment) => {
                    match self.selection_set(&fragment.node.selection_set.node) {
                        Expansion::Fields(inner) => inner,
                        other => return other,
                    }
                }
                Selection::FragmentSpread(spread) => {
                    match self.fragment(spread.node.fragment_name.node.as_str()) {
                        Expansion::Fields(inner) => inner,
                        other => return other,
                    }
                }
            };
            total = total.saturating_add(size);
            if total > self.cap {
                return Expansion::TooLarge;
            }
        }
        Expansion::Fields(total)
    }

    fn fragment(&mut self, name: &'a str) -> Expansion<'a> {
        match self.sizes.get(name) {
            Some(Sizing::Done(size)) => return Expansion::Fields(*size),
            Some(Sizing::InProgress) => return Expansion::Cycle(name),
            None => {}
        }
        // An unknown fragment is validation's to report, with its position.
        let Some(fragment) = self.document.fragments.get(name) else {
            return Expansion::Fields(0);
        };
        self.sizes.insert(name, Sizing::InProgress);
        let expansion = self.selection_set(&fragment.node.selection_set.node);
        if let Expansion::Fields(size) = expansion {
            self.sizes.insert(name, Sizing::Done(size));
        }
        expansion
    }
}

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            ensure_code(error);
        }
        response
    }
}

/// Errors our resolvers raise always carry a code; the ones left are async-graphql's own
/// verdicts on the request (syntax, unknown fields, limits, bad argument values).
pub fn ensure_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", BAD_USER_INPUT);
    }
}

pub struct Metrics;

impl ExtensionFactory for Metrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MetricsExtension {
            operation: Mutex::new(None),
        })
    }
}

struct MetricsExtension {
    operation: Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Extension for MetricsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let label = operation_label(&document);
        tracing::Span::current().record("operation", label.as_str());
        if let Ok(mut operation) = self.operation.lock() {
            *operation = Some(label);
        }
        Ok(document)
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let parsed = self.operation.lock().ok().and_then(|mut o| o.take());
        // A request refused outright may name fields that do not exist: never a label.
        let refused = response.data == async_graphql::Value::Null && !response.errors.is_empty();
        let operation = match parsed {
            Some(label) if !refused => label,
            _ => "refused".into(),
        };
        let outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        metrics::counter!("aos_graphql_requests_total", "operation" => operation.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("aos_graphql_request_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        response
    }
}

fn operation_label(document: &ExecutableDocument) -> String {
    let Some((_, operation)) = document.operations.iter().next() else {
        return "empty".into();
    };
    let kind = match operation.node.ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    let root = operation
        .node
        .selection_set
        .node
        .items
        .iter()
        .find_map(|item| match &item.node {
            Selection::Field(field) => Some(field.node.name.node.as_str()),
            _ => None,
        });
    format!("{kind}.{}", root.unwrap_or("fragment"))
}

pub struct AuditLog;

impl ExtensionFactory for AuditLog {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AuditLogExtension {
            variables: Mutex::new(Variables::default()),
        })
    }
}

struct AuditLogExtension {
    /// The request's variables, to read ids out of a mutation's `input`.
    variables: Mutex<Variables>,
}

#[async_trait::async_trait]
impl Extension for AuditLogExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Ok(mut kept) = self.variables.lock() {
            *kept = variables.clone();
        }
        next.run(ctx, query, variables).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let is_mutation = info.path_node.parent.is_none()
            && ctx.schema_env.registry.mutation_type.as_deref() == Some(info.parent_type);
        let Some(state) = ctx.data_opt::<AppState>().filter(|_| is_mutation) else {
            return next.run(ctx, info).await;
        };
        let action = info.name.to_owned();
        let return_type = info.return_type.to_owned();
        let field = info.field;
        let input = self.input(field);
        let notes = Notes::default();
        let result = notes.collect(next.run(ctx, info)).await;
        let request = ctx.data_opt::<RequestCtx>();
        audit::record(
            state,
            &notes,
            Resolved {
                action: &action,
                return_type: &return_type,
                field,
                input,
                result: &result,
                principal: request.and_then(|request| request.caller.principal().ok()),
                client_ip: request.map(|request| request.client_ip),
            },
        )
        .await;
        result
    }
}

impl AuditLogExtension {
    fn input(&self, field: &async_graphql::parser::types::Field) -> Option<Value> {
        let raw = field.get_argument("input")?.node.clone();
        let variables = self.variables.lock().ok()?;
        raw.into_const_with(|name| variables.get(&name).cloned().ok_or(()))
            .ok()
    }
}
