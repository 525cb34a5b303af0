//! Root mutations, one file per area. Every mutation takes exactly one argument, `input`.

mod accounts;
mod ai;
mod api_tokens;
pub(crate) mod connections;
mod oauth;
mod runs;
mod workflows;
mod workspaces;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::AccountMutation,
    workspaces::WorkspaceMutation,
    api_tokens::ApiTokenMutation,
    workflows::WorkflowMutation,
    runs::RunMutation,
    connections::ConnectionMutation,
    oauth::OAuthMutation,
    ai::AiMutation,
);
