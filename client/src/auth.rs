//! What `POST /api/v1/auth/dev` and `POST /api/v1/auth/refresh` answer: a token pair, its
//! life, and the user.

use serde::Deserialize;

use crate::Error;

/// Seconds an access token lives when the answer does not say (the server's default).
const DEFAULT_EXPIRES_IN: u64 = 900;

/// A signed-in user: its handle and id, access token, and what keeps it signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIn {
    pub handle: String,
    pub user_id: i64,
    /// The bearer token of HTTP calls and websockets.
    pub token: String,
    /// Rotated with `POST /api/v1/auth/refresh` before the access token expires.
    pub refresh: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
}

/// A new token pair (the refresh token rotates with the access token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// The body of both answers.
#[derive(Deserialize)]
struct Answer {
    access_token: String,
    refresh_token: String,
    #[serde(default = "default_expires_in")]
    expires_in: u64,
    user: AnswerUser,
}

#[derive(Deserialize)]
struct AnswerUser {
    id: i64,
    handle: String,
}

fn default_expires_in() -> u64 {
    DEFAULT_EXPIRES_IN
}

impl SignedIn {
    /// The token pair of this sign-in (for [`crate::SharedTokens`]).
    pub fn pair(&self) -> TokenPair {
        TokenPair {
            access_token: self.token.clone(),
            refresh_token: self.refresh.clone(),
            expires_in: self.expires_in,
        }
    }

    /// Reads a sign-in answer.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let answer: Answer = serde_json::from_slice(body).map_err(|source| Error::Decode {
            what: "sign-in".into(),
            source,
        })?;
        Ok(Self {
            handle: answer.user.handle,
            user_id: answer.user.id,
            token: answer.access_token,
            refresh: answer.refresh_token,
            expires_in: answer.expires_in,
        })
    }

    /// Takes a refreshed pair.
    pub fn renew(&mut self, pair: TokenPair) {
        self.token = pair.access_token;
        self.refresh = pair.refresh_token;
        self.expires_in = pair.expires_in;
    }
}

impl TokenPair {
    /// Reads a refresh answer.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let answer: Answer = serde_json::from_slice(body).map_err(|source| Error::Decode {
            what: "refresh".into(),
            source,
        })?;
        Ok(Self {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token,
            expires_in: answer.expires_in,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sign-in answer as the server sends it (`auth::pair::TokenPair`).
    const ANSWER: &str = r#"{"access_token":"eyJ.a.b","refresh_token":"rt_x","token_type":"Bearer","expires_in":600,"user":{"id":7,"handle":"alice","display_name":"alice","role":"user"}}"#;

    #[test]
    fn a_sign_in_answer_is_read() -> Result<(), Error> {
        let mut signed = SignedIn::parse(ANSWER.as_bytes())?;
        assert_eq!(
            signed,
            SignedIn {
                handle: "alice".into(),
                user_id: 7,
                token: "eyJ.a.b".into(),
                refresh: "rt_x".into(),
                expires_in: 600,
            }
        );
        let pair = TokenPair::parse(
            br#"{"access_token":"n","refresh_token":"r2","user":{"id":7,"handle":"alice"}}"#,
        )?;
        assert_eq!(pair.expires_in, DEFAULT_EXPIRES_IN, "absent: the default");
        signed.renew(pair);
        assert_eq!(
            (signed.token.as_str(), signed.refresh.as_str()),
            ("n", "r2")
        );
        Ok(())
    }

    #[test]
    fn an_answer_without_tokens_is_a_decode_error() {
        let err = SignedIn::parse(br#"{"user":{"id":1,"handle":"a"}}"#);
        assert!(matches!(err, Err(Error::Decode { .. })), "{err:?}");
        let err = TokenPair::parse(b"not json");
        assert!(matches!(err, Err(Error::Decode { .. })), "{err:?}");
    }
}
