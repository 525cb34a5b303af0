use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "workspace_quotas")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    pub active_workflows: Option<i64>,
    pub runs_per_month: Option<i64>,
    pub retention_days: Option<i64>,
    pub connections: Option<i64>,
    pub members: Option<i64>,
    pub ai_generations_per_day: Option<i64>,
    pub queued_runs: Option<i64>,
    pub running_runs: Option<i64>,
    pub scheduling_weight: Option<i32>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
