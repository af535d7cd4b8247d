//! The Gemini budget the AiPool draws on before every upstream call, shared by all nodes.
//!
//! The pool only knows this trait; the server implements it over Redis so that every node
//! draws on one budget (requests per minute, input tokens per minute, requests per day) and
//! one pause.

use std::time::Duration;

use futures_util::future::BoxFuture;

/// A granted call: its id and the input tokens it reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: String,
    pub tokens: u32,
}

/// What asking for budget found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetAnswer {
    Granted(Reservation),
    /// Not now: ask again after this long (a window frees a slot, or the pool is paused).
    Wait(Duration),
    /// The per-day requests are used up until the day resets, this long from now.
    ExhaustedForToday(Duration),
    /// This call alone needs more input tokens than a whole minute allows.
    TooLarge,
}

/// Why the shared budget could not be asked; the store's own error stays the source.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The store holding the budget (Redis) answered with an error.
    #[error("the shared AI budget is unavailable")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store did not answer within its deadline.
    #[error("the shared AI budget did not answer within {0:?}")]
    TimedOut(Duration),
}

pub trait AiBudget: Send + Sync + 'static {
    /// Reserves one request and `tokens` input tokens, or says how long to wait.
    fn reserve(&self, tokens: u32) -> BoxFuture<'static, Result<BudgetAnswer, BudgetError>>;
    /// Replaces a reservation's estimate with the tokens the upstream counted.
    fn reconcile(&self, reservation: Reservation, actual: u32) -> BoxFuture<'static, ()>;
    /// Stops every node from calling for `pause` (the upstream asked for it).
    fn pause(&self, pause: Duration) -> BoxFuture<'static, ()>;
    /// The upstream says the day's requests are used up: every node stops until the day
    /// resets (at least `at_least` from now). Returns how long that is.
    fn exhaust_today(&self, at_least: Duration) -> BoxFuture<'static, Duration>;
}
