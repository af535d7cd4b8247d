//! Who is calling: our own access tokens and the extractor that checks them.

pub mod extract;
pub mod tokens;

pub use extract::AuthUser;
pub use tokens::{AccessClaims, TokenIssuer};
