//! `generateWorkflow`: from a sentence to a workflow definition our own validator accepts.
//!
//! Nothing is saved or activated: the client saves the answer with `createWorkflow` or
//! `updateWorkflow`. Each generation counts against the workspace's `aiGenerationsPerDay`
//! quota (and, like every request, its rate limit). The prompt is never logged at info
//! level and never recorded in the audit log (which holds no inputs). The planner sees the
//! workspace's connections by id, name and connector only, never their credentials.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::Utc;
use serde_json::Value;

use aos_ai::planner::{ConnectionRef, plan};
use aos_domain::DomainError;
use aos_domain::access::Action;
use aos_domain::quota::Quota;

use crate::authz::parse_id;
use crate::error::{ApiError, ApiResult};
use crate::graphql::query::definition_problems;
use crate::graphql::workspace_scope;

/// Longest prompt accepted, in characters: a sentence or a paragraph, not a document.
pub const MAX_PROMPT_CHARS: usize = 4_000;

#[derive(InputObject)]
pub struct GenerateWorkflowInput {
    pub workspace_id: ID,
    /// What the workflow should do, in a sentence or a few.
    pub prompt: String,
    /// A workflow of the workspace to change rather than start from nothing.
    pub base_workflow_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct GeneratedWorkflow {
    /// A definition `validateWorkflowDefinition` accepts.
    pub definition: Json<Value>,
    pub explanation: String,
    /// What the prompt asked for that the definition does not do, and what the user must
    /// still do (e.g. create a connection).
    pub warnings: Vec<String>,
}

#[derive(Default)]
pub struct AiMutation;

#[Object]
impl AiMutation {
    /// Proposes a workflow for `prompt`; saves nothing. EDITOR and above, or a token with
    /// WORKFLOWS_WRITE.
    async fn generate_workflow(
        &self,
        ctx: &Context<'_>,
        input: GenerateWorkflowInput,
    ) -> ApiResult<GeneratedWorkflow> {
        let (state, scope) =
            workspace_scope(ctx, &input.workspace_id, Action::WriteWorkflows).await?;
        let prompt = input.prompt.trim();
        if prompt.is_empty() {
            return Err(ApiError::bad_input("the prompt is empty"));
        }
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(ApiError::bad_input(format!(
                "the prompt is longer than {MAX_PROMPT_CHARS} characters"
            )));
        }
        let base = match &input.base_workflow_id {
            Some(id) => Some(
                state
                    .store
                    .workflow(&scope, parse_id(id, "workflow")?)
                    .await?
                    .ok_or(DomainError::NotFound("workflow"))?,
            ),
            None => None,
        };
        state
            .store
            .consume_quota(&scope, Quota::AiGenerationsPerDay, Utc::now())
            .await?;
        let connections: Vec<ConnectionRef> = state
            .store
            .connections(&scope)
            .await?
            .into_iter()
            .map(|connection| ConnectionRef {
                id: connection.id.to_string(),
                name: connection.name.as_str().to_owned(),
                connector: connection.connector,
            })
            .collect();
        tracing::debug!(
            chars = prompt.chars().count(),
            "planning a workflow offline"
        );
        let mut planned = plan(prompt, &connections);
        if let Some(base) = base {
            planned.warnings.push(format!(
                "the offline planner builds a new workflow from the prompt; it did not change \"{}\": \
                 compare the two before saving",
                base.name.as_str()
            ));
        }
        // Ours to guarantee, not the caller's to fix: a definition we would refuse to save
        // is never handed out.
        let problems = definition_problems(state, &planned.definition);
        if !problems.is_empty() {
            return Err(DomainError::InvalidWorkflow(problems).into());
        }
        Ok(GeneratedWorkflow {
            definition: Json(planned.definition),
            explanation: planned.explanation,
            warnings: planned.warnings,
        })
    }
}
