//! Timestamps as stored. Postgres keeps microseconds (and rounds finer input), so every
//! timestamp is cut to microseconds before it is written: what a method returns is then
//! exactly what a later read returns, on either backend.

use chrono::{DateTime, SubsecRound, Utc};

pub(crate) fn stored(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

pub(crate) fn now() -> DateTime<Utc> {
    stored(Utc::now())
}
