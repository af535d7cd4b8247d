//! The refresh token that follows a presented one when the refresh carries an
//! `Idempotency-Key`: derived from the token and the key with a secret of the server's, so the
//! same request again (a retry after a lost answer) names the same successor, which the
//! DbWriter recognises as the rotation already made; without the presented token, the key and
//! the secret, nobody can compute it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::opaque::{self, Opaque};
use super::pair::REFRESH_PREFIX;

/// Derives successors; `grace` is how long after a rotation its retry is still recognised,
/// `concurrent` the same for a refresh without a key (a concurrent duplicate).
#[derive(Clone)]
pub struct Successors {
    /// A key of its own, derived from the signing key (so the two uses never share one),
    /// padded with zeros to SHA-256's block, which is what HMAC does to a shorter key.
    key: [u8; 64],
    pub grace: Duration,
    pub concurrent: Duration,
}

/// What a refresh without `Idempotency-Key` is derived with: never a key (keys are printable
/// ASCII), so keyed and keyless rotations of one token name different successors.
const KEYLESS: &str = "\0keyless";

impl std::fmt::Debug for Successors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Successors")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl Successors {
    pub fn new(signing_key: &[u8], grace: Duration, concurrent: Duration) -> Self {
        let mut derive = Sha256::new();
        derive.update(b"aisocial refresh successor v1\0");
        derive.update(signing_key);
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&derive.finalize());
        Self {
            key,
            grace,
            concurrent,
        }
    }

    /// The successor of a rotation asked for without a key, and how long a duplicate of it is
    /// answered the same: within `concurrent` of the rotation (and before the new token is
    /// used) the duplicate is the same request racing, not a thief; after it, reuse.
    pub fn keyless(&self, presented: &str) -> (Opaque, Option<Duration>) {
        if self.concurrent.is_zero() {
            return (opaque::generate(REFRESH_PREFIX), None);
        }
        (self.successor(presented, KEYLESS), Some(self.concurrent))
    }

    /// The refresh token that follows `presented` in a rotation asked for with
    /// `idempotency_key`.
    pub fn successor(&self, presented: &str, idempotency_key: &str) -> Opaque {
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&self.key.into());
        mac.update(presented.as_bytes());
        mac.update(b"\0");
        mac.update(idempotency_key.as_bytes());
        let text = format!(
            "{REFRESH_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        let hash = opaque::hash(&text);
        Opaque { text, hash }
    }

    /// How long a retried rotation is recognised; `None` when retries are off.
    pub fn retry_within(&self) -> Option<Duration> {
        (!self.grace.is_zero()).then_some(self.grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_token_and_key_name_the_same_successor_and_nothing_else_does() {
        let successors = Successors::new(
            b"a signing key of at least 32 bytes!!",
            Duration::ZERO,
            Duration::ZERO,
        );
        let token = opaque::generate(REFRESH_PREFIX).text;
        let first = successors.successor(&token, "key-1");
        assert_eq!(first.text, successors.successor(&token, "key-1").text);
        assert!(opaque::well_formed(&first.text, REFRESH_PREFIX));
        assert_eq!(first.hash, opaque::hash(&first.text));
        assert_ne!(first.text, successors.successor(&token, "key-2").text);
        let other = opaque::generate(REFRESH_PREFIX).text;
        assert_ne!(first.text, successors.successor(&other, "key-1").text);
        let elsewhere = Successors::new(
            b"another signing key, also 32 bytes+",
            Duration::ZERO,
            Duration::ZERO,
        );
        assert_ne!(first.text, elsewhere.successor(&token, "key-1").text);
        // The separator keeps (token, key) pairs apart that concatenate alike.
        assert_ne!(
            successors.successor("ab", "c").text,
            successors.successor("a", "bc").text
        );
        assert_eq!(successors.retry_within(), None);
    }

    #[test]
    fn a_keyless_rotation_names_one_successor_only_while_duplicates_are_answered() {
        let on = Successors::new(b"k", Duration::ZERO, Duration::from_secs(2));
        let (first, within) = on.keyless("rt_x");
        assert_eq!(first.text, on.keyless("rt_x").0.text);
        assert_eq!(within, Some(Duration::from_secs(2)));
        assert_ne!(first.text, on.keyless("rt_y").0.text);
        assert_ne!(first.text, on.successor("rt_x", "keyless").text);
        let off = Successors::new(b"k", Duration::ZERO, Duration::ZERO);
        let (random, within) = off.keyless("rt_x");
        assert_ne!(random.text, off.keyless("rt_x").0.text);
        assert_eq!(within, None);
    }

    #[test]
    fn it_is_hmac_sha256_with_the_derived_key() {
        let successors = Successors::new(b"k", Duration::from_secs(60), Duration::ZERO);
        let key: [u8; 32] = Sha256::new()
            .chain_update(b"aisocial refresh successor v1\0")
            .chain_update(b"k")
            .finalize()
            .into();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(b"rt_x\0k1");
        let expected = format!(
            "{REFRESH_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(successors.successor("rt_x", "k1").text, expected);
        assert_eq!(successors.retry_within(), Some(Duration::from_secs(60)));
    }
}
