//! The durable run engine: claims queued runs, executes their steps through the domain's
//! ports, journals every result, retries and resumes; and the triggers that start runs
//! on their own (the cron scheduler, the poller of `trigger.poll`).

pub mod code;
pub mod connector_call;
pub mod connector_node;
pub mod gate;
pub mod loop_node;
pub mod observe;
pub mod poller;
pub mod scheduler;
pub mod step;
pub mod worker;
