//! Who is calling: our own access tokens, refresh tokens and tickets, Google sign-in, and the
//! extractor that checks all of it.

pub mod extract;
pub mod google;
pub mod opaque;
pub mod pair;
pub mod successor;
pub mod tokens;

pub use extract::AuthUser;
pub use tokens::{AccessClaims, TokenIssuer};
