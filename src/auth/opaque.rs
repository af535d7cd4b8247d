//! Opaque secrets (refresh tokens, websocket tickets, OAuth state): 256 random bits, shown to
//! the client once, stored only as their SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};

/// A fresh secret and its hash.
pub struct Opaque {
    pub text: String,
    pub hash: [u8; 32],
}

/// `prefix` + 32 random bytes in base64url.
pub fn generate(prefix: &str) -> Opaque {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let text = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&text);
    Opaque { text, hash }
}

pub fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Whether `text` looks like a secret we issued with `prefix` (cheap shape check before lookup).
pub fn well_formed(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 43 && URL_SAFE_NO_PAD.decode(rest).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_hashed() {
        let a = generate("rt_");
        let b = generate("rt_");
        assert_ne!(a.text, b.text);
        assert!(well_formed(&a.text, "rt_"));
        assert!(!well_formed(&a.text, "tk_"));
        assert!(!well_formed("rt_short", "rt_"));
        assert_eq!(hash(&a.text), a.hash);
        assert_ne!(a.hash, b.hash);
    }
}
