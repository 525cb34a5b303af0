use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub workflow_id: Uuid,
    pub workflow_version: i32,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    #[sea_orm(column_type = "Text")]
    pub trigger_kind: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub input: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub output: Option<Json>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub retry_of: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub retry_from_node: Option<String>,
    pub cancel_requested: bool,
    pub last_seq: i64,
    pub available_at_ms: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub lease_owner: Option<String>,
    pub lease_expires_at_ms: i64,
    pub fencing_token: i64,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::workflows::Entity",
        from = "(Column::WorkspaceId, Column::WorkflowId)",
        to = "(super::workflows::Column::WorkspaceId, super::workflows::Column::Id)",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Workflows,
    #[sea_orm(
        belongs_to = "super::workflow_versions::Entity",
        from = "(Column::WorkflowId, Column::WorkflowVersion)",
        to = "(super::workflow_versions::Column::WorkflowId, super::workflow_versions::Column::Version)",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    WorkflowVersions,
    #[sea_orm(has_many = "super::run_steps::Entity")]
    RunSteps,
    #[sea_orm(has_many = "super::run_events::Entity")]
    RunEvents,
}

impl Related<super::workflows::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Workflows.def()
    }
}

impl Related<super::workflow_versions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowVersions.def()
    }
}

impl Related<super::run_steps::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RunSteps.def()
    }
}

impl Related<super::run_events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RunEvents.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
