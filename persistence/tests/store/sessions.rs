//! Refresh-token rotation: spend once, detect replays, honour expiry and revocation.

use aos_domain::ids::{RefreshTokenId, SessionFamilyId, UserId};
use aos_domain::ports::{NewRefreshToken, RefreshSpend, SessionStore, StoredSigningKey};
use chrono::{DateTime, Duration, SubsecRound, Utc};

use crate::support::{Ctx, on_every_backend};

on_every_backend!(
    a_token_is_spent_once_and_its_replay_is_reuse,
    expired_tokens_and_revoked_families_are_dead,
    concurrent_spends_of_one_token_have_exactly_one_winner,
    signing_keys_round_trip,
);

async fn issue(
    t: &Ctx,
    user_id: UserId,
    family_id: SessionFamilyId,
    hash: &str,
    expires_at: DateTime<Utc>,
) {
    t.store
        .insert_refresh_token(NewRefreshToken {
            id: RefreshTokenId::generate(),
            family_id,
            user_id,
            token_hash: hash.to_owned(),
            expires_at,
        })
        .await
        .expect("store a refresh token");
}

async fn a_token_is_spent_once_and_its_replay_is_reuse(t: Ctx) {
    let user = t.user("ada").await;
    let family_id = SessionFamilyId::generate();
    let now = Utc::now();
    issue(&t, user.id, family_id, "first", now + Duration::days(30)).await;

    let spent = t
        .store
        .spend_refresh_token("first", now)
        .await
        .expect("spend");
    assert_eq!(
        spent,
        RefreshSpend::Spent {
            user_id: user.id,
            family_id
        }
    );
    // The successor joins the existing family.
    issue(&t, user.id, family_id, "second", now + Duration::days(30)).await;

    let replay = t
        .store
        .spend_refresh_token("first", now)
        .await
        .expect("replay");
    assert_eq!(replay, RefreshSpend::Reused { family_id });
    let unknown = t.store.spend_refresh_token("never-issued", now).await;
    assert_eq!(unknown.expect("unknown"), RefreshSpend::Unknown);
}

async fn expired_tokens_and_revoked_families_are_dead(t: Ctx) {
    let user = t.user("ada").await;
    let now = Utc::now();
    let expired_family = SessionFamilyId::generate();
    issue(
        &t,
        user.id,
        expired_family,
        "expired",
        now - Duration::seconds(1),
    )
    .await;
    let revoked_family = SessionFamilyId::generate();
    issue(&t, user.id, revoked_family, "live", now + Duration::days(1)).await;

    t.store
        .revoke_session_family(revoked_family, now)
        .await
        .expect("revoke");
    t.store
        .revoke_session_family(revoked_family, now + Duration::hours(1))
        .await
        .expect("revoking twice is harmless");

    let expired = t.store.spend_refresh_token("expired", now).await;
    assert_eq!(expired.expect("expired"), RefreshSpend::Dead);
    let revoked = t.store.spend_refresh_token("live", now).await;
    assert_eq!(revoked.expect("revoked"), RefreshSpend::Dead);
}

async fn concurrent_spends_of_one_token_have_exactly_one_winner(t: Ctx) {
    let user = t.user("ada").await;
    let family_id = SessionFamilyId::generate();
    let now = Utc::now();
    issue(&t, user.id, family_id, "contested", now + Duration::days(1)).await;

    let attempts = (0..12).map(|_| {
        let store = t.store.clone();
        tokio::spawn(async move { store.spend_refresh_token("contested", now).await })
    });
    let outcomes: Vec<RefreshSpend> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.expect("task").expect("spend"))
        .collect();

    let winners = outcomes
        .iter()
        .filter(|o| matches!(o, RefreshSpend::Spent { .. }))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RefreshSpend::Spent { .. } | RefreshSpend::Reused { .. })),
        "{outcomes:?}"
    );
}

async fn signing_keys_round_trip(t: Ctx) {
    assert!(
        t.store
            .signing_keys()
            .await
            .expect("no keys yet")
            .is_empty()
    );
    // Postgres keeps microseconds; compare what both backends can hold.
    let created_at = Utc::now().trunc_subsecs(6);
    let older = StoredSigningKey {
        kid: "k1".into(),
        encrypted_secret: vec![0, 1, 2, 255],
        master_key_id: None,
        created_at: created_at - Duration::days(1),
    };
    let newer = StoredSigningKey {
        kid: "k2".into(),
        encrypted_secret: vec![9; 48],
        master_key_id: Some("mk-2026".into()),
        created_at,
    };

    t.store.insert_signing_key(&newer).await.expect("insert k2");
    t.store.insert_signing_key(&older).await.expect("insert k1");

    assert_eq!(
        t.store.signing_keys().await.expect("keys"),
        vec![older, newer]
    );
}
