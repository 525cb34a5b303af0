//! The durable run engine: claims queued runs, executes their steps through the domain's
//! ports, journals every result, retries and resumes.

pub mod code;
pub mod http;
pub mod step;
pub mod worker;
pub mod scheduler;
