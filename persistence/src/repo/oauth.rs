//! `OAuthStore`: pending OAuth2 authorizations and refresh locks. (Filled in by the
//! OAuth2 work.)

use aos_domain::oauth::OAuthStore;

use crate::store::SeaStore;

impl OAuthStore for SeaStore {}
