//! `aisocial-client`: a client of aisocial's public HTTP API and websocket protocol
//! (`DESIGN.md` §2 and §3), for applications, the load-test suite and the server's integration
//! tests. It speaks the wire formats only and depends on none of the server's crates.
//!
//! ```ignore
//! let client = Client::new("http://127.0.0.1:8080");
//! let alice = client.sign_in_dev("alice").await?;
//! client.follow(&alice.token, "bob").await?;
//! let (mut feed, hello) = client.open_feed(&alice.token, None).await?;
//! // read frames from `feed` with `Frame::parse`; resume later with `since` = the last id
//! ```
//!
//! # Layout
//!
//! - [`http`]: [`Client`] (`{ http, base_url }`): dev sign-in, token refresh, posts, likes,
//!   follows, websocket tickets, the server's `/health/system` and `/metrics`. Every call has a `*_request`
//!   builder too, for callers that time, retry or add headers themselves.
//! - [`auth`]: what sign-in and refresh answer ([`SignedIn`], [`TokenPair`]).
//! - [`health`]: what `/health/system` says ([`SystemSample`]).
//! - [`ws`]: opening the event feed with a bearer token (or a single-use ticket) and an
//!   optional `since` ([`ws::endpoint`], [`ws::request`], [`ws::connect`], [`ws::handshake`],
//!   [`ws::read_hello`]; [`ws::upgrade`] up to the 101, [`ws::open`] up to `hello`),
//!   over TCP sockets of its own (a small receive buffer, a source address) or any stream.
//! - [`frame`]: the server's frames ([`Frame`], borrowed and lazy; [`Hello`]), close codes,
//!   and the client's ops ([`Op`]).
//! - [`resume`]: [`ResumingFeed`], the feed that keeps itself open: it resumes with `since`
//!   after every close it did not ask for, with [`backoff`] (full jitter, `Retry-After`) and the
//!   next node when one is down, renews the token pair once for every holder of
//!   [`SharedTokens`], keeps thread subscriptions, and hands out each durable id once, in order.
//! - [`error`]: [`Error`], one typed error for all of it.

pub mod auth;
pub mod backoff;
pub mod error;
pub mod frame;
pub mod health;
pub mod http;
pub mod resume;
pub mod ws;

pub use auth::{SignedIn, TokenPair};
pub use backoff::Backoff;
pub use error::Error;
pub use frame::{Frame, FrameData, Hello, Op, ResumeStatus, close_code};
pub use health::SystemSample;
pub use http::{Client, CreatedPost, NewPost, Ticket};
pub use resume::{FeedEvent, ResumingFeed, SharedTokens};
pub use ws::Socket;

/// What every fallible call here returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;
