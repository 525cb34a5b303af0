//! Ports: what the domain needs from storage, implemented by `aos-persistence`.
//!
//! Two kinds of method live here. Unscoped ones (users, sessions, `AccessStore`) serve
//! authentication and authorization, which must run before any workspace is known to be
//! the caller's. Every method on workspace-owned data takes a `WorkspaceScope`, and its
//! implementation filters every query by `scope.workspace_id()`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::access::WorkspaceScope;
use crate::api_token::{ApiToken, ApiTokenName, Scopes};
use crate::audit::AuditStore;
use crate::connection::{
    Connection, ConnectionChange, ConnectionEvent, ConnectionTestResult, Credentials,
    NewConnection, SealedConnection, StoredDataKey,
};
use crate::error::{DomainError, DomainResult};
use crate::ids::{
    ApiTokenId, ConnectionId, RefreshTokenId, SessionFamilyId, UserId, WorkflowId, WorkspaceId,
};
use crate::journal::{
    ClaimedRun, Journal, JournalRefusal, Lease, NewRun, Run, RunEvent, RunOutcome, StepRecord,
};
use crate::oauth::OAuthStore;
use crate::page::{Page, PageRequest};
use crate::polling::PollStore;
use crate::queue_gauge::QueueGauge;
use crate::quota::QuotaStore;
use crate::rate_limits::RateLimitStore;
use crate::run::{RunId, RunStatus};
use crate::run_stats::RunStatsStore;
use crate::user::{Email, User, UserCredentials, UserName};
use crate::workflow::{Definition, NewWorkflow, Workflow, WorkflowChange, WorkflowVersion};
use crate::workspace::{Member, Role, Workspace, WorkspaceName};

#[async_trait]
pub trait UserStore: Send + Sync {
    /// `Conflict` when the e-mail address is taken.
    async fn create_user(
        &self,
        email: &Email,
        name: &UserName,
        password_hash: &str,
    ) -> DomainResult<User>;
    async fn user(&self, id: UserId) -> DomainResult<Option<User>>;
    async fn user_by_email(&self, email: &Email) -> DomainResult<Option<User>>;
    async fn credentials_by_email(&self, email: &Email) -> DomainResult<Option<UserCredentials>>;
}

/// A refresh token about to be stored; only the hash of its secret is kept.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: RefreshTokenId,
    pub family_id: SessionFamilyId,
    pub user_id: UserId,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshSpend {
    /// The token was live and is now spent; issue its successor in the same family.
    Spent {
        user_id: UserId,
        family_id: SessionFamilyId,
    },
    /// The token had been spent before: someone replays it. The family must be revoked.
    Reused {
        family_id: SessionFamilyId,
    },
    /// Expired, or its family was revoked (log-out, reuse detected).
    Dead,
    Unknown,
}

/// A JWT signing key; the secret is encrypted under the master key by the API layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub encrypted_secret: Vec<u8>,
    /// The master key that sealed the secret; `None` for keys sealed before master keys
    /// had ids, which are opened by trying each known key.
    pub master_key_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates the family if it does not exist yet, then stores the token in it.
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> DomainResult<()>;
    /// Marks the token spent, atomically: of two concurrent spends of one token, exactly
    /// one gets `Spent` and the other `Reused`.
    async fn spend_refresh_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<RefreshSpend>;
    async fn revoke_session_family(
        &self,
        family_id: SessionFamilyId,
        now: DateTime<Utc>,
    ) -> DomainResult<()>;
    async fn signing_keys(&self) -> DomainResult<Vec<StoredSigningKey>>;
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> DomainResult<()>;
    /// Replaces a signing key's sealed secret if it is still sealed by
    /// `previous_master_key_id`; `false` if another rotation got there first.
    async fn reseal_signing_key(
        &self,
        kid: &str,
        previous_master_key_id: Option<&str>,
        master_key_id: &str,
        encrypted_secret: &[u8],
    ) -> DomainResult<bool>;
}

/// An object addressed by id alone, whose workspace must be found before authorizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRef {
    Workflow(WorkflowId),
    ApiToken(ApiTokenId),
    Run(RunId),
    Connection(ConnectionId),
}

/// Lookups for authentication and authorization only: they run before a scope exists.
#[async_trait]
pub trait AccessStore: Send + Sync {
    async fn membership(
        &self,
        user_id: UserId,
        workspace_id: WorkspaceId,
    ) -> DomainResult<Option<Role>>;
    async fn api_token_by_hash(&self, token_hash: &str) -> DomainResult<Option<ApiToken>>;
    async fn touch_api_token(&self, id: ApiTokenId, now: DateTime<Utc>) -> DomainResult<()>;
    /// The caller's workspaces with the caller's role in each, oldest first.
    async fn workspaces_of(&self, user_id: UserId) -> DomainResult<Vec<(Workspace, Role)>>;
    /// Creates a workspace with `owner` as its first OWNER, in one transaction.
    async fn create_workspace(
        &self,
        owner: UserId,
        name: &WorkspaceName,
    ) -> DomainResult<Workspace>;
    /// The workspace an object belongs to, or `None` when there is no such object.
    async fn locate(&self, object: ObjectRef) -> DomainResult<Option<WorkspaceId>>;
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub name: ApiTokenName,
    pub scopes: Scopes,
    pub token_hash: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    async fn workspace(&self, scope: &WorkspaceScope) -> DomainResult<Workspace>;
    /// Deletes the workspace and everything it owns.
    async fn delete_workspace(&self, scope: &WorkspaceScope) -> DomainResult<()>;
    async fn rename_workspace(
        &self,
        scope: &WorkspaceScope,
        name: &WorkspaceName,
    ) -> DomainResult<Workspace>;
    /// Members, oldest first.
    async fn members(&self, scope: &WorkspaceScope) -> DomainResult<Vec<Member>>;
    async fn member_role(
        &self,
        scope: &WorkspaceScope,
        user_id: UserId,
    ) -> DomainResult<Option<Role>>;
    async fn owner_count(&self, scope: &WorkspaceScope) -> DomainResult<u64>;
    /// `Conflict` when the user is a member already.
    async fn add_member(
        &self,
        scope: &WorkspaceScope,
        user_id: UserId,
        role: Role,
    ) -> DomainResult<Member>;
    /// `NotFound("member")` when the user is not a member.
    async fn set_member_role(
        &self,
        scope: &WorkspaceScope,
        user_id: UserId,
        role: Role,
    ) -> DomainResult<Member>;
    /// Removes the member and revokes the API tokens they created in this workspace, in one
    /// transaction: access ends at once. `NotFound("member")` when not a member.
    async fn remove_member(
        &self,
        scope: &WorkspaceScope,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> DomainResult<()>;
    async fn create_api_token(
        &self,
        scope: &WorkspaceScope,
        token: NewApiToken,
    ) -> DomainResult<ApiToken>;
    /// Tokens that are not revoked, newest first.
    async fn api_tokens(&self, scope: &WorkspaceScope) -> DomainResult<Vec<ApiToken>>;
    /// `NotFound("API token")` when there is no such live token in the workspace.
    async fn revoke_api_token(
        &self,
        scope: &WorkspaceScope,
        id: ApiTokenId,
        now: DateTime<Utc>,
    ) -> DomainResult<()>;
}

#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Stores version 1, created by `scope.actor()`.
    async fn create_workflow(
        &self,
        scope: &WorkspaceScope,
        workflow: NewWorkflow,
    ) -> DomainResult<Workflow>;
    async fn workflow(
        &self,
        scope: &WorkspaceScope,
        id: WorkflowId,
    ) -> DomainResult<Option<Workflow>>;
    /// Newest first; `after` is the id of the last item of the previous page.
    async fn workflows(
        &self,
        scope: &WorkspaceScope,
        page: PageRequest<WorkflowId>,
    ) -> DomainResult<Page<Workflow>>;
    /// Stores the next version atomically: concurrent updates get distinct version numbers.
    /// `NotFound("workflow")` when absent.
    async fn update_workflow(
        &self,
        scope: &WorkspaceScope,
        id: WorkflowId,
        change: WorkflowChange,
    ) -> DomainResult<Workflow>;
    async fn set_workflow_active(
        &self,
        scope: &WorkspaceScope,
        id: WorkflowId,
        active: bool,
    ) -> DomainResult<Workflow>;
    /// Deletes the workflow and its versions. `NotFound("workflow")` when absent.
    async fn delete_workflow(&self, scope: &WorkspaceScope, id: WorkflowId) -> DomainResult<()>;
    /// Every version, newest first.
    async fn workflow_versions(
        &self,
        scope: &WorkspaceScope,
        id: WorkflowId,
    ) -> DomainResult<Vec<WorkflowVersion>>;
}

/// Which runs a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub workflow_id: Option<WorkflowId>,
}

/// Runs as the API sees them: queued, read and cancelled within one workspace.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Queues the run with its `RUN_QUEUED` event (seq 1) and any reused steps.
    /// `NotFound("workflow")` when the workflow or its version is not in the workspace.
    async fn enqueue_run(&self, scope: &WorkspaceScope, run: NewRun) -> DomainResult<Run>;
    async fn run(&self, scope: &WorkspaceScope, id: RunId) -> DomainResult<Option<Run>>;
    /// Newest first; `after` is the id of the last run of the previous page.
    async fn runs(
        &self,
        scope: &WorkspaceScope,
        filter: RunFilter,
        page: PageRequest<RunId>,
    ) -> DomainResult<Page<Run>>;
    /// The run's steps in the order they started.
    async fn run_steps(&self, scope: &WorkspaceScope, id: RunId) -> DomainResult<Vec<StepRecord>>;
    /// Events with `seq > after_seq`, oldest first, at most `limit`.
    async fn run_events(
        &self,
        scope: &WorkspaceScope,
        id: RunId,
        after_seq: i64,
        limit: u64,
    ) -> DomainResult<Vec<RunEvent>>;
    /// A queued run nobody holds is cancelled at once (with its `RUN_CANCELLED` event); a
    /// running one is marked and woken, and its worker cancels it at the next step
    /// boundary. `Conflict` when the run has already finished.
    async fn request_cancel(
        &self,
        scope: &WorkspaceScope,
        id: RunId,
        now: DateTime<Utc>,
    ) -> DomainResult<CancelOutcome>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// Cancelled now; the events it wrote are returned for live subscribers.
    Cancelled { run: Run, events: Vec<RunEvent> },
    /// A worker holds the run and will cancel it.
    Requested(Run),
}

/// A queue operation refused because the worker no longer holds the run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Refused(#[from] JournalRefusal),
    #[error(transparent)]
    Storage(#[from] DomainError),
}

/// What a worker learns when it extends its lease or journals.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRenewal {
    /// Someone asked to cancel the run: stop at this step boundary.
    pub cancel_requested: bool,
    /// The events this write appended, numbered.
    pub events: Vec<RunEvent>,
}

/// The engine's side of the runs: cross-tenant, for workers only, never for the API.
#[async_trait]
pub trait RunQueue: Send + Sync {
    /// Takes the next claimable run (available, unfinished, without a live lease) for
    /// `lease_ms`, favouring the workspace with the fewest runs in progress per unit of its
    /// scheduling weight and skipping workspaces already at their running limit
    /// (`per_workspace_limit` unless the workspace has its own).
    async fn claim(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        per_workspace_limit: u32,
    ) -> DomainResult<Option<ClaimedRun>>;
    /// Whether a workspace other than `workspace_id` has a due run that [`RunQueue::claim`]
    /// would take before `workspace_id`'s next one if a worker of `workspace_id` made way
    /// for it. A queue that does not order workspaces says no, and no run ever makes way.
    async fn another_workspace_waiting(
        &self,
        _workspace_id: WorkspaceId,
        _now_ms: i64,
        _per_workspace_limit: u32,
    ) -> DomainResult<bool> {
        Ok(false)
    }
    /// Writes `journal` atomically and extends the lease to `now_ms + lease_ms` (unless
    /// the run finished or sleeps), if `lease` is still the run's newest.
    async fn journal(
        &self,
        lease: &Lease,
        journal: Journal,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<LeaseRenewal, QueueError>;
    /// Stores a run that `worker` executes at once instead of queueing it: the run, its
    /// `RUN_QUEUED` event and `journal` in one write, under a new lease until
    /// `now_ms + lease_ms`. `NotFound("workflow")` when the pinned version is not in the
    /// workspace.
    async fn insert_claimed(
        &self,
        workspace_id: WorkspaceId,
        run: NewRun,
        worker: &str,
        journal: Journal,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<(Lease, LeaseRenewal), QueueError>;
}

/// A workflow as its triggers see it: where it lives and what it runs now.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerTarget {
    pub workspace_id: WorkspaceId,
    pub workflow_id: WorkflowId,
    pub version: i32,
    pub active: bool,
    /// The current version's definition, as stored.
    pub definition: serde_json::Value,
}

/// The triggers' side of the runs. Webhooks and schedules start runs on behalf of no
/// caller, so, like the queue, these methods are unscoped; only trigger code holds them,
/// and a webhook reaches a workflow only through the secret key in its URL.
#[async_trait]
pub trait TriggerStore: Send + Sync {
    async fn webhook_target(&self, key: &str) -> DomainResult<Option<TriggerTarget>>;
    /// Queues a run of `target`'s workflow, as `RunStore::enqueue_run` does.
    async fn enqueue_triggered(&self, target: &TriggerTarget, run: NewRun) -> DomainResult<Run>;
    /// A run the trigger queued, with its steps.
    async fn triggered_run(&self, run_id: RunId) -> DomainResult<Option<(Run, Vec<StepRecord>)>>;
    /// Every active workflow's current version, for the scheduler to find its schedules.
    async fn active_workflows(&self) -> DomainResult<Vec<TriggerTarget>>;
    /// Queues the run of one cron tick, unless a scheduler (on any node) already fired
    /// that tick of that workflow: then `None`, and nothing is written.
    async fn fire_schedule_tick(
        &self,
        target: &TriggerTarget,
        tick_ms: i64,
        run: NewRun,
    ) -> DomainResult<Option<Run>>;
}

/// Where journaled events go for live subscribers (in process, or across nodes through
/// Redis). Delivery is best effort: a subscriber that misses one reads it back from
/// storage by `seq`, so nothing is lost when a publish is.
pub trait RunEventSink: Send + Sync {
    fn publish(&self, events: &[RunEvent]);
}

/// What became of a run handed to [`RunExecutor::execute_now`].
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutedRun {
    /// It ran to its end in place.
    Ended(RunOutcome),
    /// It is stored and goes on in the queue (it waits on a timer or a retry, or its
    /// worker lost it): follow it by its events.
    Continues,
    /// The executor is at its limit and did not start it: queue it instead.
    Declined(Box<NewRun>),
}

/// Executes a run in the process that received it, without the queue round trip: the
/// run is stored only with its first journal write (for a run of pure steps, its end), so
/// a crash before that leaves no trace and the caller, who got no answer, may retry.
#[async_trait]
pub trait RunExecutor: Send + Sync {
    async fn execute_now(
        &self,
        workspace_id: WorkspaceId,
        run: NewRun,
        definition: Arc<Definition>,
    ) -> DomainResult<ExecutedRun>;
}

/// A workspace's connections. Secrets go in sealed and come out sealed: this port never
/// sees them in the clear.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// `Conflict` if the workspace already has a connection of that name.
    async fn create_connection(
        &self,
        scope: &WorkspaceScope,
        connection: NewConnection,
    ) -> DomainResult<Connection>;
    async fn connection(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
    ) -> DomainResult<Option<Connection>>;
    /// Ordered by name.
    async fn connections(&self, scope: &WorkspaceScope) -> DomainResult<Vec<Connection>>;
    async fn sealed_connection(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
    ) -> DomainResult<Option<SealedConnection>>;
    /// `NotFound` if it does not exist; `Conflict` on a taken name.
    async fn update_connection(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
        change: ConnectionChange,
    ) -> DomainResult<Connection>;
    async fn record_connection_test(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
        at: DateTime<Utc>,
        ok: bool,
    ) -> DomainResult<Connection>;
    /// `NotFound` if it does not exist.
    async fn delete_connection(&self, scope: &WorkspaceScope, id: ConnectionId)
    -> DomainResult<()>;
}

/// The engine's way to a connection: it acts for a claimed run's workspace, which the
/// run itself names, so there is no caller to authorize.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn sealed_connection_of(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
    ) -> DomainResult<Option<SealedConnection>>;
}

/// Opens a connection's credentials for a step of a run of `workspace_id`. Implemented by
/// the vault; the engine holds only this.
#[async_trait]
pub trait ConnectionSecrets: Send + Sync {
    /// `Err` carries a message safe to show in the step's error (it names the connection,
    /// never a secret): not found, not usable in its state, or not openable.
    async fn open_connection(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
    ) -> Result<(Connection, Credentials), String>;

    /// After the service refused the credentials (HTTP 401): new credentials if they can
    /// be renewed (an OAuth2 refresh, one process at a time), for one more try; `Err`
    /// when nothing can be renewed, with a message safe to show.
    async fn renew_after_refusal(
        &self,
        _workspace_id: WorkspaceId,
        _id: ConnectionId,
    ) -> Result<(Connection, Credentials), String> {
        Err("the service refused the connection's credentials".to_owned())
    }

    /// Like [`ConnectionSecrets::renew_after_refusal`], knowing which credentials were
    /// refused: when they were renewed since (by another step, another process), the
    /// renewed ones come back without another renewal. Prefer this where the refused
    /// credentials are at hand.
    async fn renew_refused(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        _refused: &Credentials,
    ) -> Result<(Connection, Credentials), String> {
        self.renew_after_refusal(workspace_id, id).await
    }
}

/// Where connection changes go for `connectionEvents` subscribers (in process, or across
/// nodes through Redis). Delivery is best effort: a subscriber that missed one reads the
/// connection's current state back.
pub trait ConnectionEventSink: Send + Sync {
    fn publish(&self, event: ConnectionEvent);
}

/// Checks that a connection's credentials work, by a request its connector chooses.
#[async_trait]
pub trait ConnectionTester: Send + Sync {
    async fn test(
        &self,
        connection: &Connection,
        credentials: &Credentials,
    ) -> ConnectionTestResult;
}

/// The vault's storage: one wrapped data key per workspace. Instance-level, unscoped: the
/// vault serves every workspace, and a rotation walks all of them.
#[async_trait]
pub trait DataKeyStore: Send + Sync {
    async fn data_key(&self, workspace_id: WorkspaceId) -> DomainResult<Option<StoredDataKey>>;
    /// Stores `key` as the workspace's data key unless it has one already, and returns
    /// the one stored: of two processes racing to create it, both end up with the winner's.
    async fn insert_data_key(
        &self,
        workspace_id: WorkspaceId,
        key: StoredDataKey,
    ) -> DomainResult<StoredDataKey>;
    /// Up to `limit` data keys wrapped by any master key but `master_key_id`.
    async fn data_keys_not_under(
        &self,
        master_key_id: &str,
        limit: u64,
    ) -> DomainResult<Vec<(WorkspaceId, StoredDataKey)>>;
    /// Replaces the wrapping of a data key if it is still wrapped by the master key that
    /// `previous` names; `false` if another rotation got there first.
    async fn rewrap_data_key(
        &self,
        workspace_id: WorkspaceId,
        previous: &StoredDataKey,
        rewrapped: &StoredDataKey,
    ) -> DomainResult<bool>;
    /// How many data keys and signing keys each master key id seals (`None`: signing keys
    /// sealed before master keys had ids).
    async fn master_key_usage(&self) -> DomainResult<Vec<(Option<String>, u64)>>;
}

/// Everything the API needs from storage, handed to it as one `Arc<dyn Store>`.
pub trait Store:
    UserStore
    + SessionStore
    + AccessStore
    + WorkspaceStore
    + WorkflowStore
    + RunStore
    + TriggerStore
    + ConnectionStore
    + CredentialStore
    + DataKeyStore
    + PollStore
    + OAuthStore
    + AuditStore
    + RateLimitStore
    + QuotaStore
    + RunStatsStore
    + QueueGauge
{
}

impl<
    T: UserStore
        + SessionStore
        + AccessStore
        + WorkspaceStore
        + WorkflowStore
        + RunStore
        + TriggerStore
        + ConnectionStore
        + CredentialStore
        + DataKeyStore
        + PollStore
        + OAuthStore
        + AuditStore
        + RateLimitStore
        + QuotaStore
        + RunStatsStore
        + QueueGauge,
> Store for T
{
}
