use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use aos_domain::connection::{AuthKind, Connection, ConnectionName, ConnectionStatus};
use aos_domain::ids::{ConnectionId, WorkspaceId};

use super::ConnectionGate;

fn connection(settings: Value) -> Connection {
    let now = chrono::Utc::now();
    Connection {
        id: ConnectionId::generate(),
        workspace_id: WorkspaceId::generate(),
        name: ConnectionName::parse("Paced").expect("a name"),
        connector: "http".to_owned(),
        auth_kind: AuthKind::Bearer,
        status: ConnectionStatus::Valid,
        settings,
        created_at: now,
        updated_at: now,
        last_tested_at: None,
        last_test_ok: None,
    }
}

async fn enter_times(gate: &ConnectionGate, connection: &Connection, times: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..times {
        gate.enter(connection, Duration::from_secs(30))
            .await
            .expect("an open connection");
    }
    started.elapsed()
}

#[tokio::test]
async fn a_connection_without_a_rate_is_not_held_back() {
    let gate = ConnectionGate::new();
    let free = connection(json!({}));

    let took = enter_times(&gate, &free, 50).await;

    assert!(took < Duration::from_millis(100), "{took:?}");
}

#[tokio::test]
async fn requests_of_a_paced_connection_are_spaced_by_its_rate() {
    let gate = ConnectionGate::new();
    let paced = connection(json!({"maxRequestsPerSecond": 20}));
    let other = connection(json!({"maxRequestsPerSecond": 20}));

    // Six requests at 20 per second: the first at once, then one every 50 ms.
    let took = enter_times(&gate, &paced, 6).await;
    // Another connection has its own pace.
    let other_took = enter_times(&gate, &other, 1).await;

    assert!(took >= Duration::from_millis(240), "{took:?}");
    assert!(took < Duration::from_millis(1_000), "{took:?}");
    assert!(other_took < Duration::from_millis(40), "{other_took:?}");
}

#[tokio::test]
async fn concurrent_steps_of_a_paced_connection_take_turns() {
    let gate = ConnectionGate::new();
    let paced = connection(json!({"maxRequestsPerSecond": 10}));
    let started = Instant::now();

    let finished: Vec<Duration> = futures::future::join_all((0..4).map(|_| async {
        gate.enter(&paced, Duration::from_secs(30))
            .await
            .expect("an open connection");
        started.elapsed()
    }))
    .await;

    let mut finished = finished;
    finished.sort();
    assert!(finished[3] >= Duration::from_millis(290), "{finished:?}");
}

#[tokio::test]
async fn a_changed_rate_takes_effect() {
    let gate = ConnectionGate::new();
    let mut paced = connection(json!({"maxRequestsPerSecond": 1}));
    enter_times(&gate, &paced, 1).await;

    paced.settings = json!({"maxRequestsPerSecond": 1000});
    let took = enter_times(&gate, &paced, 5).await;

    assert!(took < Duration::from_millis(200), "{took:?}");
}

#[tokio::test]
async fn a_retry_after_closes_the_connection_for_every_request_until_then() {
    let gate = ConnectionGate::new();
    let limited = connection(json!({}));
    let unrelated = connection(json!({}));

    gate.close_for(limited.id, Duration::from_millis(300));
    let started = Instant::now();
    let (waited, unrelated_took) = tokio::join!(
        async {
            gate.enter(&limited, Duration::from_secs(30))
                .await
                .expect("waits it out");
            started.elapsed()
        },
        enter_times(&gate, &unrelated, 1)
    );

    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert!(
        unrelated_took < Duration::from_millis(50),
        "{unrelated_took:?}"
    );
    assert_eq!(gate.closed_for(limited.id), None, "open again");
}

#[tokio::test]
async fn a_closing_longer_than_the_caller_waits_is_refused_at_once_with_the_wait() {
    let gate = ConnectionGate::new();
    let limited = connection(json!({}));
    gate.close_for(limited.id, Duration::from_secs(120));
    // A shorter closing does not reopen it earlier.
    gate.close_for(limited.id, Duration::from_secs(1));

    let started = Instant::now();
    let refused = gate.enter(&limited, Duration::from_secs(30)).await;

    let Err(wait) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert!(wait > Duration::from_secs(100), "{wait:?}");
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(gate.closed_for(limited.id).is_some());
}
