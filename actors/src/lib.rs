//! The actors of aisocial and the typed messages between them.
//!
//! # Layout
//! - [`session`]: one actor per websocket; resume, delivery in id order, client operations.
//! - [`backlog`]: a session's outbound backlog, counted in by the broker and out by the
//!   session (slow consumers close with 1013).
//! - [`feed_broker`]: who is online and who follows whom; fans the committed log out in id
//!   order (sequencer, routing, catch-up and presence as plain types, the actor a shell).
//! - [`audience`]: who receives an event, the one decision live routing and replay share.
//! - [`follow_graph`]: where the broker reads whom users follow (batched, one snapshot).
//! - [`db_writer`]: the only writer to PostgreSQL; group commit, answers after COMMIT.
//! - [`db_error`]: which PostgreSQL failures pass with time (answered "retry", not 500), and
//!   [`db_error::ReadError`], why a read through the pool failed.
//! - [`error_chain`]: an error and its causes as one line, for logs.
//! - [`committed`]: what the DbWriter announces after COMMIT.
//! - [`event_log`]: the durable event log (dense ids in commit order) and resume reads.
//! - [`log_record`]: each log record's stored and sent JSON shape, typed and versioned.
//! - [`protocol`]: the websocket wire format, the only module that knows it.
//! - [`revoked`]: the revoked sign-in sessions and suspended accounts this node knows of,
//!   which the broker refuses at `Connect`.
//! - [`roles`]: the roles configuration grants, and how they reconcile with stored ones.
//! - [`starting`]: how many sessions are still registering and replaying (for admission).
//! - [`ai_pool`]: the AI dispatcher (a bounded queue fair across users) and its workers, which
//!   call Gemini under the budget every node shares and stream answers through the broker.
//! - [`meter`]: mailbox depth, wait and handling time for every actor.
//! - [`lsn`]: WAL positions and the DbWriter's commit watermark (read-your-writes on replicas).
//! - [`ids`], [`model`], [`store`]: newtype ids, domain records, row mapping.
//!
//! Nothing here knows HTTP routes; the server crate turns requests into these messages.

pub mod ai_pool;
pub mod audience;
pub mod backlog;
pub mod committed;
pub mod db_error;
pub mod db_writer;
pub mod error_chain;
pub mod event_log;
pub mod feed_broker;
pub mod follow_graph;
pub mod ids;
pub mod log_record;
pub mod lsn;
pub mod meter;
pub mod model;
pub mod protocol;
pub mod revoked;
pub mod roles;
pub mod session;
pub mod starting;
pub mod store;
