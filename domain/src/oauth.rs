//! OAuth2 connections: pending authorizations (the `state` of an authorization-code flow)
//! and the per-connection refresh lock.

use async_trait::async_trait;

/// Storage for OAuth2 flows. (Filled in by the OAuth2 work.)
#[async_trait]
pub trait OAuthStore: Send + Sync {}
