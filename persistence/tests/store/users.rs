//! Accounts: creation, look-ups, and one account per e-mail address.

use aos_domain::DomainError;
use aos_domain::ids::UserId;
use aos_domain::ports::UserStore;
use aos_domain::user::{Email, UserName};

use crate::support::{Ctx, on_every_backend};

on_every_backend!(
    created_users_are_found_by_id_and_email,
    a_taken_email_is_a_conflict
);

async fn created_users_are_found_by_id_and_email(t: Ctx) {
    let email = Email::parse("Ada@Example.com").expect("valid e-mail");
    let name = UserName::parse("Ada Lovelace").expect("valid name");

    let ada = t
        .store
        .create_user(&email, &name, "$argon2id$hash")
        .await
        .expect("create ada");

    assert_eq!(ada.email.as_str(), "ada@example.com");
    assert_eq!(
        t.store.user(ada.id).await.expect("by id"),
        Some(ada.clone())
    );
    assert_eq!(
        t.store.user_by_email(&email).await.expect("by e-mail"),
        Some(ada.clone())
    );
    let credentials = t
        .store
        .credentials_by_email(&email)
        .await
        .expect("credentials")
        .expect("ada has credentials");
    assert_eq!(credentials.user, ada);
    assert_eq!(credentials.password_hash, "$argon2id$hash");
    assert_eq!(
        t.store.user(UserId::generate()).await.expect("unknown id"),
        None
    );
    let stranger = Email::parse("nobody@example.com").expect("valid e-mail");
    assert!(
        t.store
            .credentials_by_email(&stranger)
            .await
            .expect("unknown e-mail")
            .is_none()
    );
}

async fn a_taken_email_is_a_conflict(t: Ctx) {
    let email = Email::parse("grace@example.com").expect("valid e-mail");
    let name = UserName::parse("Grace").expect("valid name");
    t.store
        .create_user(&email, &name, "h1")
        .await
        .expect("first account");

    let again = t.store.create_user(&email, &name, "h2").await;

    match again {
        Err(DomainError::Conflict(message)) => {
            assert_eq!(message, "an account with this e-mail already exists");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}
