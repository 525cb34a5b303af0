//! GraphQL types of the audit log: one record, the paged list and its filters.

use async_graphql::{ComplexObject, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use aos_domain::access::Actor;
use aos_domain::audit::{AuditEvent, AuditFilter};

use crate::authz::parse_id;
use crate::error::ApiResult;
use crate::graphql::types::PageInfo;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AuditActorKind {
    User,
    ApiToken,
}

/// Every field narrows the log; omitted fields do not.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// A mutation's name, e.g. `createWorkflow`.
    pub action: Option<String>,
    /// The acting user or API token.
    pub actor_id: Option<ID>,
    pub target_id: Option<ID>,
    /// `SUCCESS` or an error code such as `FORBIDDEN`.
    pub outcome: Option<String>,
    /// From this time on (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (exclusive).
    pub until: Option<DateTime<Utc>>,
}

impl AuditLogFilter {
    pub fn into_domain(self) -> ApiResult<AuditFilter> {
        Ok(AuditFilter {
            action: self.action,
            actor_id: self
                .actor_id
                .map(|id| parse_id::<uuid::Uuid>(&id, "actor"))
                .transpose()?,
            target_id: self.target_id.map(|id| id.0),
            outcome: self.outcome,
            since: self.since,
            until: self.until,
        })
    }
}

pub struct AuditEventObject(pub AuditEvent);

/// One mutation attempted in the workspace. It never holds the mutation's input.
#[Object(name = "AuditEvent")]
impl AuditEventObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// The mutation's name, e.g. `createWorkflow`.
    async fn action(&self) -> &str {
        &self.0.action
    }

    async fn actor_kind(&self) -> AuditActorKind {
        match self.0.actor {
            Actor::User(_) => AuditActorKind::User,
            Actor::ApiToken { .. } => AuditActorKind::ApiToken,
        }
    }

    /// The acting user, or the acting API token.
    async fn actor_id(&self) -> ID {
        match self.0.actor {
            Actor::User(id) => ID(id.to_string()),
            Actor::ApiToken { id, .. } => ID(id.to_string()),
        }
    }

    /// The user answerable for the action: the actor, or the API token's creator.
    async fn actor_user_id(&self) -> ID {
        ID(self.0.actor.user_id().to_string())
    }

    /// The kind of object acted on: `Workflow`, `Run`, `Connection`, `ApiToken`, `User`,
    /// `Workspace`, ...
    async fn target_kind(&self) -> Option<&str> {
        self.0.target.as_ref().map(|target| target.kind.as_str())
    }

    async fn target_id(&self) -> Option<ID> {
        self.0.target.as_ref().map(|target| ID(target.id.clone()))
    }

    async fn client_ip(&self) -> Option<String> {
        self.0.client_ip.map(|ip| ip.to_string())
    }

    /// `SUCCESS`, or the error code the caller got.
    async fn outcome(&self) -> &str {
        &self.0.outcome
    }
}

/// A Relay cursor connection of audit records, newest first; the cursor is the record id.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AuditEventConnection {
    pub edges: Vec<AuditEventEdge>,
    pub page_info: PageInfo,
}

#[ComplexObject]
impl AuditEventConnection {
    /// The nodes of `edges`, for clients that do not need cursors.
    async fn nodes(&self) -> Vec<&AuditEventObject> {
        self.edges.iter().map(|edge| &edge.node).collect()
    }
}

impl AuditEventConnection {
    pub fn new(nodes: Vec<AuditEventObject>, has_next_page: bool) -> Self {
        let (edges, page_info) = PageInfo::forward_page(
            nodes,
            has_next_page,
            |node| node.0.id.to_string(),
            |cursor, node| AuditEventEdge { cursor, node },
        );
        Self { edges, page_info }
    }
}

#[derive(SimpleObject)]
pub struct AuditEventEdge {
    pub cursor: String,
    pub node: AuditEventObject,
}
