//! End-to-end tests of the GraphQL WebSocket handler: a real server and client, asserting
//! exact messages and close codes. Each test states the protocol rule it protects.

mod harness;
mod legacy;
mod transport_ws;
mod upgrade;
