//! Integration tests: the real server on port 0, a fresh database per test, real websocket
//! clients, the PostgreSQL and Redis of this machine.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

mod admission;
mod ai;
mod ai_unconfigured;
mod auth;
mod bad_input;
mod blocks;
mod client_frames;
mod contention;
mod dependency_errors;
mod feed;
mod google;
mod helpers;
mod lifecycle;
mod moderation;
mod nodes;
mod posts;
mod provider;
mod relay;
mod revocation;
mod routing;
mod sdk;
mod social;
mod tls;
mod websocket;
