//! Token renewal over real storage, on SQLite and (with `AOS_TEST_DATABASE_URL`) Postgres.
//! Each "process" here has its own connection pool, vault and refresher, as separate
//! servers sharing one database would.
//!
//! Invariants protected: a token is renewed before a step uses it when it is about to
//! expire, and after a refusal; however many processes and steps need the renewal at once,
//! the token endpoint is asked once; a rotated refresh token is stored; a grant refused for
//! good makes the connection `NEEDS_REAUTH`, announced once, and from then on steps are
//! told to reconnect it without the token endpoint being asked again.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aos_domain::access::{Action, Principal, WorkspaceScope, authorize};
use aos_domain::connection::{
    AuthKind, ConnectionEvent, ConnectionEventKind, ConnectionName, ConnectionStatus, Credentials,
    NewConnection,
};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::oauth::{OAuth2Credentials, OAuth2Grant, OAuthStore};
use aos_domain::ports::{
    AccessStore, ConnectionEventSink, ConnectionSecrets, CredentialStore, UserStore,
};
use aos_domain::user::{Email, UserName};
use aos_domain::workspace::{Role, WorkspaceName};
use aos_persistence::SeaStore;
use aos_testkit::{FreshDatabase, postgres_admin_url};
use aos_vault::service::{CredentialVault, MasterKeys};
use aos_vault::{Keyring, MasterKey};
use chrono::Utc;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::{client_at, flows, issued_at};
use crate::oauth::{RefreshTiming, RefreshingSecrets};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(super::Backend::Sqlite, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(super::Backend::Postgres, super::$name).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_token_about_to_expire_is_renewed_before_use_and_the_rotated_refresh_token_stored,
    two_processes_renewing_at_once_make_one_token_request,
    steps_refused_at_once_renew_the_token_once,
    a_revoked_refresh_token_needs_reauth_and_steps_are_told_to_reconnect,
    a_token_endpoint_in_trouble_leaves_the_connection_to_be_renewed_later,
    the_background_pass_renews_only_the_tokens_coming_due,
    a_client_credentials_connection_renews_by_asking_again,
    a_short_lived_token_is_not_renewed_on_every_use,
);

enum Backend {
    Sqlite,
    Postgres,
}

const MASTER_KEY: [u8; 32] = [42; 32];

/// Every event the refreshers announced.
#[derive(Default)]
struct Announced(Mutex<Vec<ConnectionEvent>>);

impl ConnectionEventSink for Announced {
    fn publish(&self, event: ConnectionEvent) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

impl Announced {
    fn all(&self) -> Vec<ConnectionEvent> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A database with a workspace, and the fake authorization server.
struct World {
    url: String,
    store: SeaStore,
    vault: Arc<CredentialVault>,
    workspace_id: WorkspaceId,
    scope: WorkspaceScope,
    server: MockServer,
    announced: Arc<Announced>,
}

async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(World) -> Fut,
    Fut: Future<Output = ()>,
{
    let fresh = match backend {
        Backend::Sqlite => FreshDatabase::sqlite("aos_c", "aos.db").expect("a SQLite database"),
        Backend::Postgres => {
            let Some(admin_url) = postgres_admin_url() else {
                eprintln!("skipped: set AOS_TEST_DATABASE_URL to run the Postgres tests");
                return;
            };
            FreshDatabase::postgres(&admin_url, "aos_c")
                .await
                .expect("a Postgres database")
        }
    };
    let database = aos_persistence::connect(fresh.url())
        .await
        .expect("connect");
    aos_persistence::migrate(&database).await.expect("migrate");
    let store = SeaStore::new(database);
    let email = Email::parse("owner@example.com").expect("an e-mail address");
    let name = UserName::parse("Owner").expect("a name");
    let owner = store
        .create_user(&email, &name, "$argon2id$test")
        .await
        .expect("a user");
    let workspace = store
        .create_workspace(owner.id, &WorkspaceName::parse("Acme").expect("a name"))
        .await
        .expect("a workspace");
    let scope = authorize(
        &Principal::User(owner.id),
        workspace.id,
        Some(Role::Owner),
        Action::ManageConnections,
        "workspace",
    )
    .expect("the owner manages connections");
    let world = World {
        url: fresh.url().to_owned(),
        vault: Arc::new(vault(&store)),
        store,
        workspace_id: workspace.id,
        scope,
        server: MockServer::start().await,
        announced: Arc::new(Announced::default()),
    };
    test(world).await;
    fresh.destroy().await;
}

fn vault(store: &SeaStore) -> CredentialVault {
    CredentialVault::new(
        Arc::new(MasterKeys::fixed(Keyring::new(MasterKey::derived(
            &MASTER_KEY,
        )))),
        Arc::new(store.clone()),
    )
}

impl World {
    /// A process of its own: its connection pool, its vault, its refresher.
    async fn process(&self) -> Arc<RefreshingSecrets> {
        let database = aos_persistence::connect(&self.url).await.expect("connect");
        let store = Arc::new(SeaStore::new(database));
        Arc::new(RefreshingSecrets::new(
            Arc::new(vault(&store)),
            store,
            flows(true),
            self.announced.clone(),
            RefreshTiming::default(),
        ))
    }

    /// The token endpoint answers `answer` (after `delay`).
    async fn token_endpoint(&self, answer: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(answer)
            .mount(&self.server)
            .await;
    }

    async fn token_requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    /// An OAuth2 connection to the fake server whose credentials `shape` gives.
    async fn connect(
        &self,
        grant: OAuth2Grant,
        refresh_token: Option<&str>,
        expires_in_secs: u64,
        shape: impl FnOnce(&mut OAuth2Credentials),
    ) -> ConnectionId {
        let mut credentials = issued_at(
            &client_at(&self.server.uri()),
            grant,
            refresh_token,
            expires_in_secs,
        );
        shape(&mut credentials);
        let expires_at = credentials.expires_at;
        let id = ConnectionId::generate();
        let sealed_credentials = self
            .vault
            .seal(self.workspace_id, id, &Credentials::OAuth2(credentials))
            .await
            .expect("seal");
        self.store
            .create_oauth_connection(
                &self.scope,
                NewConnection {
                    id,
                    // No hyphens, so no token (`acc-1`, `ref-2`) can turn up inside the name.
                    name: ConnectionName::parse(&format!("crm {}", id.as_uuid().simple()))
                        .expect("a name"),
                    connector: "http".into(),
                    auth_kind: AuthKind::OAuth2,
                    settings: json!({}),
                    sealed_credentials,
                },
                expires_at,
            )
            .await
            .expect("create");
        id
    }

    /// What storage holds for the connection now.
    async fn stored(&self, id: ConnectionId) -> (ConnectionStatus, OAuth2Credentials) {
        let sealed = self
            .store
            .sealed_connection_of(self.workspace_id, id)
            .await
            .expect("read")
            .expect("exists");
        let credentials = self
            .vault
            .open(self.workspace_id, id, &sealed.sealed_credentials)
            .await
            .expect("open");
        let oauth2 = credentials.oauth2().cloned().expect("OAuth2 credentials");
        (sealed.connection.status, oauth2)
    }
}

/// An hour-long token issued an hour ago, now `seconds` from expiry.
fn expiring_in(seconds: i64) -> impl FnOnce(&mut OAuth2Credentials) {
    move |credentials| {
        credentials.obtained_at = Utc::now() - chrono::Duration::seconds(3600 - seconds);
        credentials.expires_at = Some(Utc::now() + chrono::Duration::seconds(seconds));
    }
}

/// A token lasting for `lifetime` seconds, as a token endpoint just issued it.
fn issued_now_lasting(lifetime: i64) -> impl FnOnce(&mut OAuth2Credentials) {
    move |credentials| {
        credentials.obtained_at = Utc::now();
        credentials.expires_at = Some(Utc::now() + chrono::Duration::seconds(lifetime));
    }
}

fn renewed_token() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "acc-2", "token_type": "bearer", "expires_in": 3600,
        "refresh_token": "ref-2"
    }))
}

fn form(request: &Request) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn access_token(credentials: &Credentials) -> &str {
    credentials
        .oauth2()
        .map_or("<not OAuth2>", |oauth2| oauth2.access_token.as_str())
}

async fn a_token_about_to_expire_is_renewed_before_use_and_the_rotated_refresh_token_stored(
    world: World,
) {
    world.token_endpoint(renewed_token()).await;
    // Within the margin a step wants a token to outlast.
    let id = world
        .connect(
            OAuth2Grant::AuthorizationCode,
            Some("ref-1"),
            3600,
            expiring_in(10),
        )
        .await;
    let process = world.process().await;

    let (connection, credentials) = process
        .open_connection(world.workspace_id, id)
        .await
        .expect("opened");
    let (_, again) = process
        .open_connection(world.workspace_id, id)
        .await
        .expect("opened again");

    assert_eq!(access_token(&credentials), "acc-2");
    assert_eq!(access_token(&again), "acc-2");
    assert_eq!(connection.status, ConnectionStatus::Valid);
    let requests = world.token_requests().await;
    assert_eq!(requests.len(), 1, "the renewed token lasts");
    assert_eq!(form(&requests[0])["grant_type"], "refresh_token");
    assert_eq!(form(&requests[0])["refresh_token"], "ref-1");
    let (status, stored) = world.stored(id).await;
    assert_eq!(status, ConnectionStatus::Valid);
    assert_eq!(stored.access_token, "acc-2");
    assert_eq!(stored.refresh_token.as_deref(), Some("ref-2"));
    let due = world
        .store
        .connections_to_refresh(Utc::now() + chrono::Duration::minutes(30), 10)
        .await
        .expect("list");
    assert!(due.is_empty(), "the new expiry is stored");
    let announced = world.announced.all();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].kind, ConnectionEventKind::Refreshed);
    assert_eq!(announced[0].connection_id, id);
    assert_eq!(
        announced[0].message,
        format!(
            "connection `crm {}` renewed its access token",
            id.as_uuid().simple()
        )
    );
}

async fn two_processes_renewing_at_once_make_one_token_request(world: World) {
    world
        .token_endpoint(renewed_token().set_delay(Duration::from_millis(500)))
        .await;
    let id = world
        .connect(
            OAuth2Grant::AuthorizationCode,
            Some("ref-1"),
            3600,
            expiring_in(5),
        )
        .await;
    let processes = [world.process().await, world.process().await];

    let steps = (0..6).map(|n| {
        let process = Arc::clone(&processes[n % 2]);
        let workspace_id = world.workspace_id;
        tokio::spawn(async move { process.open_connection(workspace_id, id).await })
    });
    let opened = futures::future::join_all(steps).await;

    for result in opened {
        let (_, credentials) = result.expect("joined").expect("opened");
        assert_eq!(access_token(&credentials), "acc-2");
    }
    assert_eq!(world.token_requests().await.len(), 1);
    assert_eq!(
        world.stored(id).await.1.refresh_token.as_deref(),
        Some("ref-2")
    );
}

async fn steps_refused_at_once_renew_the_token_once(world: World) {
    world
        .token_endpoint(renewed_token().set_delay(Duration::from_millis(300)))
        .await;
    // Not due: only the service's refusal makes it renew.
    let id = world
        .connect(OAuth2Grant::AuthorizationCode, Some("ref-1"), 3600, |_| {})
        .await;
    let processes = [world.process().await, world.process().await];

    let opened = processes[0]
        .open_connection(world.workspace_id, id)
        .await
        .expect("opened");
    let refused = Arc::new(opened.1.clone());
    // Half say which token was refused, half do not: either way, one renewal.
    let refusals = (0..6).map(|n| {
        let process = Arc::clone(&processes[n % 2]);
        let refused = Arc::clone(&refused);
        let workspace_id = world.workspace_id;
        tokio::spawn(async move {
            if n < 3 {
                process.renew_refused(workspace_id, id, &refused).await
            } else {
                process.renew_after_refusal(workspace_id, id).await
            }
        })
    });
    let renewed = futures::future::join_all(refusals).await;

    assert_eq!(access_token(&opened.1), "acc-0");
    for result in renewed {
        let (_, credentials) = result.expect("joined").expect("renewed");
        assert_eq!(access_token(&credentials), "acc-2");
    }
    assert_eq!(world.token_requests().await.len(), 1);
}

async fn a_revoked_refresh_token_needs_reauth_and_steps_are_told_to_reconnect(world: World) {
    world
        .token_endpoint(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": "ref-1 was revoked"
        })))
        .await;
    let id = world
        .connect(
            OAuth2Grant::AuthorizationCode,
            Some("ref-1"),
            3600,
            expiring_in(5),
        )
        .await;
    let process = world.process().await;

    let first = process
        .open_connection(world.workspace_id, id)
        .await
        .expect_err("cannot renew");
    let later = process
        .open_connection(world.workspace_id, id)
        .await
        .expect_err("still cannot");
    let after_refusal = process
        .renew_after_refusal(world.workspace_id, id)
        .await
        .expect_err("nor after a refusal");

    assert!(
        first.contains("needs to be authorized again")
            && first.contains("invalid_grant")
            && first.contains("reconnect"),
        "{first}"
    );
    assert!(later.contains("reconnect"), "{later}");
    assert!(after_refusal.contains("reconnect"), "{after_refusal}");
    for message in [&first, &later, &after_refusal] {
        assert!(
            !message.contains("ref-1") && !message.contains("acc-0"),
            "{message}"
        );
    }
    assert_eq!(world.token_requests().await.len(), 1, "asked once");
    assert_eq!(world.stored(id).await.0, ConnectionStatus::NeedsReauth);
    let announced = world.announced.all();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].kind, ConnectionEventKind::NeedsReauth);
    assert_eq!(announced[0].status, ConnectionStatus::NeedsReauth);
    assert_eq!(announced[0].message, first);
}

async fn a_token_endpoint_in_trouble_leaves_the_connection_to_be_renewed_later(world: World) {
    world.token_endpoint(ResponseTemplate::new(503)).await;
    let id = world
        .connect(
            OAuth2Grant::AuthorizationCode,
            Some("ref-1"),
            3600,
            expiring_in(5),
        )
        .await;
    let process = world.process().await;

    let failed = process
        .open_connection(world.workspace_id, id)
        .await
        .expect_err("no token");
    let status_after_failure = world.stored(id).await.0;
    world.server.reset().await;
    world.token_endpoint(renewed_token()).await;
    let (_, credentials) = process
        .open_connection(world.workspace_id, id)
        .await
        .expect("renewed once the server is back");

    assert!(failed.contains("try again"), "{failed}");
    assert_eq!(status_after_failure, ConnectionStatus::Valid);
    assert_eq!(access_token(&credentials), "acc-2");
    let kinds: Vec<ConnectionEventKind> = world
        .announced
        .all()
        .iter()
        .map(|event| event.kind)
        .collect();
    assert_eq!(kinds, vec![ConnectionEventKind::Refreshed]);
}

async fn the_background_pass_renews_only_the_tokens_coming_due(world: World) {
    world.token_endpoint(renewed_token()).await;
    // An hour-long token with a minute and a half left.
    let due = world
        .connect(
            OAuth2Grant::AuthorizationCode,
            Some("ref-1"),
            3600,
            expiring_in(90),
        )
        .await;
    let lasting = world
        .connect(
            OAuth2Grant::AuthorizationCode,
            Some("ref-9"),
            3 * 3600,
            |_| {},
        )
        .await;
    let process = world.process().await;

    let renewed = process.renew_due().await;
    let renewed_again = process.renew_due().await;

    assert_eq!((renewed, renewed_again), (1, 0));
    assert_eq!(world.token_requests().await.len(), 1);
    assert_eq!(world.stored(due).await.1.access_token, "acc-2");
    assert_eq!(world.stored(lasting).await.1.access_token, "acc-0");
}

async fn a_client_credentials_connection_renews_by_asking_again(world: World) {
    world.token_endpoint(renewed_token()).await;
    let id = world
        .connect(OAuth2Grant::ClientCredentials, None, 3600, expiring_in(5))
        .await;
    let process = world.process().await;

    let (_, credentials) = process
        .open_connection(world.workspace_id, id)
        .await
        .expect("opened");

    assert_eq!(access_token(&credentials), "acc-2");
    let requests = world.token_requests().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(form(&requests[0])["grant_type"], "client_credentials");
}

async fn a_short_lived_token_is_not_renewed_on_every_use(world: World) {
    world
        .token_endpoint(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "acc-2", "token_type": "bearer", "expires_in": 40,
            "refresh_token": "ref-2"
        })))
        .await;
    // Forty seconds of life, shorter than the margin a step wants.
    let fresh = world
        .connect(
            OAuth2Grant::AuthorizationCode,
            Some("ref-9"),
            40,
            issued_now_lasting(40),
        )
        .await;
    let expiring = world
        .connect(
            OAuth2Grant::AuthorizationCode,
            Some("ref-1"),
            3600,
            expiring_in(5),
        )
        .await;
    let process = world.process().await;

    for _ in 0..3 {
        for id in [fresh, expiring] {
            process
                .open_connection(world.workspace_id, id)
                .await
                .expect("opened");
        }
    }

    assert_eq!(
        world.token_requests().await.len(),
        1,
        "only the expiring one, once"
    );
    assert_eq!(world.stored(fresh).await.1.access_token, "acc-0");
    assert_eq!(world.stored(expiring).await.1.access_token, "acc-2");
}
