//! Our access tokens: short-lived JWTs signed with HS256 under our own `iss`, `aud` and `typ`,
//! so they can never be confused with Google's ID tokens (RS256, Google's `iss`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aisocial_actors::ids::UserId;
use aisocial_actors::model::{Role, User};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "aisocial";
pub const AUDIENCE: &str = "aisocial-api";
pub const ACCESS_TYPE: &str = "access";
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub typ: String,
    pub handle: String,
    pub role: Role,
    /// The sign-in session (refresh-token family) this token belongs to; logout revokes it.
    pub sid: i64,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

impl AccessClaims {
    pub fn user_id(&self) -> Option<UserId> {
        self.sub.parse().ok().filter(|id| *id > 0).map(UserId)
    }
}

/// Why a token was refused. The detail is for logs; clients get a plain 401.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("could not sign a token: {0}")]
    Signing(String),
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenIssuer {
    pub fn new(key: &[u8], ttl: Duration) -> Self {
        // The algorithm is pinned: the token header never chooses it.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user: &User, family: i64) -> Result<String, TokenError> {
        let iat = now_secs();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.id.to_string(),
            typ: ACCESS_TYPE.into(),
            handle: user.handle.clone(),
            role: user.role,
            sid: family,
            iat,
            exp: iat + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError::Invalid("too long".into()));
        }
        let data = decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.typ != ACCESS_TYPE {
            return Err(TokenError::Invalid("not an access token".into()));
        }
        let now = now_secs();
        // jsonwebtoken never checks iat: refuse tokens from the future or older than a lifetime.
        if claims.iat > now + LEEWAY_SECS
            || claims.iat + self.ttl.as_secs() + LEEWAY_SECS < now
            || claims.exp > claims.iat + self.ttl.as_secs()
        {
            return Err(TokenError::Invalid("iat out of range".into()));
        }
        if claims.user_id().is_none() {
            return Err(TokenError::Invalid("sub is not a user id".into()));
        }
        Ok(claims)
    }

    /// Signs and verifies once, so a missing or doubled crypto backend fails at start-up
    /// instead of on the first request.
    pub fn self_test(&self) -> Result<(), TokenError> {
        let probe = User {
            id: UserId(1),
            handle: "selftest".into(),
            display_name: String::new(),
            role: Role::User,
        };
        let token = self.issue(&probe, 0)?;
        let claims = self.verify(&token)?;
        if claims.handle != probe.handle {
            return Err(TokenError::Invalid(
                "self-test round trip changed the claims".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn user() -> User {
        User {
            id: UserId(7),
            handle: "alice".into(),
            display_name: "Alice".into(),
            role: Role::User,
        }
    }

    fn forge(header: &serde_json::Value, claims: &serde_json::Value, key: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        // Sign header.claims with HS256 under `key` by hand, whatever they say.
        let signing_input = format!("{h}.{c}");
        let sig = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(key),
            Algorithm::HS256,
        )
        .unwrap_or_default();
        format!("{signing_input}.{sig}")
    }

    fn good_claims() -> serde_json::Value {
        let now = now_secs();
        serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "7", "typ": "access", "handle": "alice",
            "role": "user", "sid": 1, "iat": now, "exp": now + 600, "jti": "x"
        })
    }

    #[test]
    fn a_token_round_trips_and_the_self_test_passes() {
        let issuer = TokenIssuer::new(KEY, Duration::from_secs(900));
        issuer.self_test().unwrap();
        let token = issuer.issue(&user(), 3).unwrap_or_default();
        let claims = issuer.verify(&token).map_err(|e| e.to_string());
        assert_eq!(claims.map(|c| c.user_id()), Ok(Some(UserId(7))));
    }

    #[test]
    fn forged_and_mutated_tokens_are_refused() {
        let issuer = TokenIssuer::new(KEY, Duration::from_secs(900));
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        assert!(issuer.verify(&forge(&header, &good_claims(), KEY)).is_ok());
        let mutate = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = good_claims();
            f(&mut c);
            forge(&header, &c, KEY)
        };
        let now = now_secs();
        let cases = vec![
            (
                "wrong key",
                forge(&header, &good_claims(), b"another-key-another-key-another!"),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                    URL_SAFE_NO_PAD.encode(good_claims().to_string())
                ),
            ),
            (
                "wrong iss",
                mutate(&|c| c["iss"] = "https://accounts.google.com".into()),
            ),
            ("wrong aud", mutate(&|c| c["aud"] = "someone-else".into())),
            (
                "no aud",
                mutate(&|c| {
                    c.as_object_mut().map(|o| o.remove("aud"));
                }),
            ),
            (
                "no iss",
                mutate(&|c| {
                    c.as_object_mut().map(|o| o.remove("iss"));
                }),
            ),
            (
                "no sub",
                mutate(&|c| {
                    c.as_object_mut().map(|o| o.remove("sub"));
                }),
            ),
            (
                "no exp",
                mutate(&|c| {
                    c.as_object_mut().map(|o| o.remove("exp"));
                }),
            ),
            (
                "expired",
                mutate(&|c| {
                    c["iat"] = (now - 2000).into();
                    c["exp"] = (now - 1000).into();
                }),
            ),
            (
                "exp as string",
                mutate(&|c| c["exp"] = (now + 600).to_string().into()),
            ),
            (
                "iat in future",
                mutate(&|c| {
                    c["iat"] = (now + 3600).into();
                    c["exp"] = (now + 3900).into();
                }),
            ),
            (
                "too long-lived",
                mutate(&|c| c["exp"] = (now + 86_400).into()),
            ),
            ("refresh typ", mutate(&|c| c["typ"] = "refresh".into())),
            (
                "sub not a user",
                mutate(&|c| c["sub"] = "google-123".into()),
            ),
            ("sub zero", mutate(&|c| c["sub"] = "0".into())),
            ("garbage", "a.b.c".to_owned()),
            ("empty", String::new()),
            ("huge", "a".repeat(10_000)),
        ];
        let mut rs = forge(
            &serde_json::json!({"alg":"RS256","typ":"JWT"}),
            &good_claims(),
            KEY,
        );
        rs.push('x');
        let mut all = cases;
        all.push(("rs256 header", rs));
        for (name, token) in all {
            assert!(issuer.verify(&token).is_err(), "{name} was accepted");
        }
    }
}

/// Property tests of token parsing: whatever arrives as a bearer token is refused or is a
/// token we signed, unchanged; never a panic.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(KEY, Duration::from_secs(900))
    }

    fn user() -> User {
        User {
            id: UserId(7),
            handle: "alice".into(),
            display_name: "Alice".into(),
            role: Role::User,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn arbitrary_strings_are_refused(raw in "\\PC{0,300}") {
            prop_assert!(issuer().verify(&raw).is_err());
        }

        #[test]
        fn jwt_shaped_garbage_is_refused(
            parts in proptest::collection::vec("[A-Za-z0-9_=-]{0,80}", 1..5)
        ) {
            prop_assert!(issuer().verify(&parts.join(".")).is_err());
        }

        #[test]
        fn a_changed_byte_never_verifies_as_other_claims(at in any::<prop::sample::Index>(), with in b'-'..=b'z') {
            let issuer = issuer();
            let token = issuer.issue(&user(), 3).unwrap_or_default();
            let original = issuer.verify(&token).map(|c| (c.sub, c.jti)).ok();
            prop_assert!(original.is_some());
            let mut bytes = token.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = with;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            if let Ok(claims) = issuer.verify(&changed) {
                prop_assert_eq!(Some((claims.sub, claims.jti)), original);
            }
        }
    }
}
