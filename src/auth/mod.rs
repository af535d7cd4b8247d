//! Who is calling: our own access tokens, refresh tokens and tickets, Google sign-in, and the
//! extractor that checks all of it.

pub mod accounts;
pub mod extract;
pub mod google;
pub mod opaque;
pub mod pair;
pub mod successor;
pub mod tickets;
pub mod tokens;

pub use accounts::{Accounts, Google};
pub use extract::{AuthUser, Verifier};
pub use tokens::{AccessClaims, TokenIssuer};
