//! The AI layer: from a sentence to a workflow the domain validator accepts.
//!
//! `planner` is the offline planner, used when no model is configured: deterministic,
//! for the common shapes, and honest about the rest (warnings, never silent drops).

pub mod planner;
