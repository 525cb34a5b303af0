//! The durable run engine: claims queued runs, executes their steps through the domain's
//! ports, journals every result, retries and resumes.

pub mod code;
pub mod loop_node;
pub mod scheduler;
pub mod step;
pub mod worker;
