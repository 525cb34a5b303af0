//! `PollStore`: the state of polling triggers. (Filled in by the polling work.)

use aos_domain::polling::PollStore;

use crate::store::SeaStore;

impl PollStore for SeaStore {}
