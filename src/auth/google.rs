//! Google ID tokens, verified as security.md items 1–3 require: RS256 only, the key picked by
//! `kid` from Google's JWKS (cached per `Cache-Control`, refetched single-flight at most every
//! 30 s for an unknown `kid`, stale keys kept when a refresh fails), `iss`, `aud`, `azp`,
//! `exp`, `iat` and `sub` checked, the nonce when the code flow set one, and the e-mail trusted
//! only where Google is authoritative for it.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

pub const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
/// An unknown `kid` refetches the JWKS at most this often.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
/// Used when the JWKS response carries no usable `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
const MAX_MAX_AGE: Duration = Duration::from_secs(86_400);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// `iat` older than this is refused.
const MAX_TOKEN_AGE_SECS: u64 = 3600;
const LEEWAY_SECS: u64 = 60;
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why an ID token was refused; the detail goes to logs and the audit log, not to clients.
/// Text that came from the token (a parser's message may quote it) is shown escaped, so a
/// token cannot write a line, a field or a terminal sequence into a text log.
#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    #[error("malformed token: {}", .0.escape_debug())]
    Malformed(String),
    #[error("algorithm {0:?} is not RS256")]
    Algorithm(Algorithm),
    #[error("no key with kid {0:?}")]
    UnknownKey(String),
    #[error("invalid token: {}", .0.escape_debug())]
    Invalid(String),
    #[error("the JWKS could not be fetched: {0}")]
    Jwks(String),
}

/// What a key id of a JWKS looks like (Google's are 40 hex digits); anything else is refused
/// before it is looked up or logged.
fn is_key_id(kid: &str) -> bool {
    (1..=128).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fresh_until: Option<Instant>,
    last_fetch: Option<Instant>,
}

/// Google's signing keys, cached.
pub struct Jwks {
    http: reqwest::Client,
    url: String,
    keys: RwLock<Keys>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
    min_refetch: Duration,
}

fn max_age(headers: &reqwest::header::HeaderMap, floor: Duration) -> Duration {
    headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .map(str::trim)
                .find_map(|d| d.strip_prefix("max-age="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(DEFAULT_MAX_AGE, Duration::from_secs)
        .clamp(floor, MAX_MAX_AGE)
}

impl Jwks {
    pub fn new(http: reqwest::Client, url: String) -> Self {
        Self {
            http,
            url,
            keys: RwLock::new(Keys {
                by_kid: HashMap::new(),
                fresh_until: None,
                last_fetch: None,
            }),
            refresh: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
            min_refetch: MIN_REFETCH,
        }
    }

    /// Changes the floor between refetches (tests use a short one to see rotation).
    pub fn with_min_refetch(mut self, min_refetch: Duration) -> Self {
        self.min_refetch = min_refetch;
        self
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lookup(&self, kid: &str) -> (Option<DecodingKey>, bool, bool) {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let fresh = keys.fresh_until.is_some_and(|t| now < t);
        let may_refetch = keys
            .last_fetch
            .is_none_or(|t| now.duration_since(t) >= self.min_refetch);
        (keys.by_kid.get(kid).cloned(), fresh, may_refetch)
    }

    /// The key for `kid`, fetching the JWKS when the cache is stale or the `kid` is unknown
    /// (at most once per [`MIN_REFETCH`], one fetch at a time).
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, GoogleError> {
        let (key, fresh, may_refetch) = self.lookup(kid);
        match key {
            Some(key) if fresh => return Ok(key),
            None if !may_refetch => return Err(GoogleError::UnknownKey(kid.to_owned())),
            _ => {}
        }
        let _single_flight = self.refresh.lock().await;
        // Someone else may have fetched while we waited.
        let (key, fresh, may_refetch) = self.lookup(kid);
        match key {
            Some(key) if fresh || !may_refetch => return Ok(key),
            None if !may_refetch => return Err(GoogleError::UnknownKey(kid.to_owned())),
            _ => {}
        }
        if let Err(e) = self.fetch().await {
            tracing::warn!(error = %e, url = %self.url, "JWKS refresh failed; keeping the keys we have");
        }
        let (key, _, _) = self.lookup(kid);
        key.ok_or_else(|| GoogleError::UnknownKey(kid.to_owned()))
    }

    async fn fetch(&self) -> Result<(), GoogleError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        {
            let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
            keys.last_fetch = Some(Instant::now());
        }
        let response = self
            .http
            .get(&self.url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| GoogleError::Jwks(e.to_string()))?;
        if !response.status().is_success() {
            return Err(GoogleError::Jwks(format!("status {}", response.status())));
        }
        let ttl = max_age(response.headers(), self.min_refetch);
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| GoogleError::Jwks(e.to_string()))?;
        let mut by_kid = HashMap::new();
        for jwk in set.keys {
            let usable = jwk.kty == "RSA"
                && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
                && jwk.usage.as_deref().is_none_or(|u| u == "sig");
            if let (true, Some(kid), Some(n), Some(e)) = (usable, jwk.kid, jwk.n, jwk.e)
                && let Ok(key) = DecodingKey::from_rsa_components(&n, &e)
            {
                by_kid.insert(kid, key);
            }
        }
        if by_kid.is_empty() {
            return Err(GoogleError::Jwks("no usable RS256 keys".into()));
        }
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.by_kid = by_kid;
        keys.fresh_until = Some(Instant::now() + ttl);
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    /// Checked against our client id by jsonwebtoken already.
    One(#[expect(dead_code, reason = "only the list form needs azp")] String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(t) => t == "true",
        }
    }
}

#[derive(Deserialize)]
struct GoogleClaims {
    sub: String,
    aud: Audience,
    azp: Option<String>,
    iat: Option<u64>,
    email: Option<String>,
    email_verified: Option<Flag>,
    hd: Option<String>,
    name: Option<String>,
    nonce: Option<String>,
}

/// A verified Google identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleIdentity {
    pub sub: String,
    /// Present only when Google is authoritative for the address.
    pub trusted_email: Option<String>,
    pub name: Option<String>,
}

/// Verifies Google ID tokens for one client id.
pub struct GoogleVerifier {
    client_id: String,
    jwks: Jwks,
    validation: Validation,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl GoogleVerifier {
    pub fn new(client_id: String, jwks: Jwks) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&ISSUERS);
        validation.set_audience(&[&client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            client_id,
            jwks,
            validation,
        }
    }

    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    pub async fn verify(
        &self,
        id_token: &str,
        expected_nonce: Option<&str>,
    ) -> Result<GoogleIdentity, GoogleError> {
        if id_token.is_empty() || id_token.len() > MAX_TOKEN_BYTES {
            return Err(GoogleError::Malformed("empty or too long".into()));
        }
        let header = decode_header(id_token).map_err(|e| GoogleError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(GoogleError::Algorithm(header.alg));
        }
        let kid = header
            .kid
            .ok_or_else(|| GoogleError::Malformed("no kid".into()))?;
        if !is_key_id(&kid) {
            return Err(GoogleError::Malformed(
                "the kid is not a key id (1 to 128 of A-Z a-z 0-9 - _ .)".into(),
            ));
        }
        let key = self.jwks.key(&kid).await?;
        let claims = decode::<GoogleClaims>(id_token, &key, &self.validation)
            .map_err(|e| GoogleError::Invalid(e.to_string()))?
            .claims;
        let now = now_secs();
        let iat = claims
            .iat
            .ok_or_else(|| GoogleError::Invalid("no iat".into()))?;
        if iat > now + LEEWAY_SECS {
            return Err(GoogleError::Invalid("iat is in the future".into()));
        }
        if iat + MAX_TOKEN_AGE_SECS < now {
            return Err(GoogleError::Invalid("iat is more than an hour old".into()));
        }
        if let Audience::Many(list) = &claims.aud
            && (list.len() != 1 || claims.azp.is_some())
            && claims.azp.as_deref() != Some(self.client_id.as_str())
        {
            return Err(GoogleError::Invalid("azp is not our client id".into()));
        }
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(GoogleError::Invalid("sub is empty or too long".into()));
        }
        if let Some(expected) = expected_nonce
            && claims.nonce.as_deref() != Some(expected)
        {
            return Err(GoogleError::Invalid("nonce mismatch".into()));
        }
        let verified = claims.email_verified.as_ref().is_some_and(Flag::is_true);
        let trusted_email = claims.email.filter(|email| {
            let gmail = email.to_ascii_lowercase().ends_with("@gmail.com");
            verified && (gmail || claims.hd.as_deref().is_some_and(|hd| !hd.is_empty()))
        });
        Ok(GoogleIdentity {
            sub: claims.sub,
            trusted_email,
            name: claims.name.filter(|n| !n.trim().is_empty()),
        })
    }
}

/// A valid handle suggested by the profile: the e-mail's local part, else the name, else `user`.
pub fn handle_hint(identity: &GoogleIdentity) -> String {
    let source = identity
        .trusted_email
        .as_deref()
        .and_then(|e| e.split('@').next())
        .or(identity.name.as_deref())
        .unwrap_or("user");
    let mut hint = String::new();
    for c in source.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '_'
        };
        if !(c == '_' && hint.ends_with('_')) {
            hint.push(c);
        }
    }
    let mut hint: String = hint.trim_matches('_').chars().take(24).collect();
    if hint.len() < 3 {
        hint = format!("user_{hint}").trim_end_matches('_').to_owned();
    }
    if hint.len() < 3 {
        hint = "user".into();
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(email: Option<&str>, name: Option<&str>) -> GoogleIdentity {
        GoogleIdentity {
            sub: "1".into(),
            trusted_email: email.map(Into::into),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn token_text_never_reaches_a_log_unescaped() {
        let forged_kid = "k1\n2026-12-07T00:00:00Z  INFO admin granted user_id=1";
        assert!(!is_key_id(forged_kid));
        assert!(!is_key_id(""));
        assert!(!is_key_id("k\"1"));
        assert!(is_key_id("0123456789abcdef0123456789abcdef01234567"));
        let parser_message = GoogleError::Malformed(format!(
            "unknown variant `{forged_kid}\u{1b}[31m`, expected one of RS256"
        ))
        .to_string();
        assert!(
            !parser_message.chars().any(char::is_control),
            "{parser_message}"
        );
        let invalid = GoogleError::Invalid("a\r\nb".into()).to_string();
        assert!(!invalid.chars().any(char::is_control), "{invalid}");
        let unknown = GoogleError::UnknownKey(forged_kid.into()).to_string();
        assert!(!unknown.chars().any(char::is_control), "{unknown}");
    }

    #[test]
    fn handle_hints_are_valid_handles() {
        let cases = [
            (id(Some("Jane.Doe+x@gmail.com"), None), "jane_doe_x"),
            (id(None, Some("Zoë Ñandú")), "zo_and"),
            (id(None, Some("李")), "user"),
            (id(None, None), "user"),
            (id(Some("ab@x.org"), None), "user_ab"),
            (id(None, Some(&"a".repeat(80))), "aaaaaaaaaaaaaaaaaaaaaaaa"),
        ];
        for (identity, expected) in cases {
            let hint = handle_hint(&identity);
            assert_eq!(hint, expected);
            assert!(aisocial_actors::ids::Handle::parse(&hint).is_ok(), "{hint}");
        }
    }
}

/// Property tests of Google ID-token parsing, as our own tokens have: whatever arrives as an
/// ID token is refused or is one Google's key signed, unchanged; never a panic, and the
/// refusal's text never carries a control character into a log.
#[cfg(test)]
mod properties {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};
    use proptest::prelude::*;

    use super::*;

    const CLIENT_ID: &str = "client-id.apps.googleusercontent.com";
    const KID: &str = "test-key-1";

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).expect("a test fixture")
    }

    /// A verifier whose key cache holds the first test key, fresh: no fetch is ever made.
    fn verifier() -> GoogleVerifier {
        let set: serde_json::Value =
            serde_json::from_slice(&fixture("google_test_jwks.json")).expect("the test JWKS");
        let key = &set["key1"];
        let decoding = DecodingKey::from_rsa_components(
            key["n"].as_str().unwrap_or_default(),
            key["e"].as_str().unwrap_or_default(),
        )
        .expect("the test key");
        crate::install_crypto_provider();
        let jwks = Jwks {
            http: reqwest::Client::new(),
            // Never reached: the cache is fresh and refetches are far apart.
            url: "http://127.0.0.1:9/jwks".into(),
            keys: RwLock::new(Keys {
                by_kid: HashMap::from([(KID.to_owned(), decoding)]),
                fresh_until: Some(Instant::now() + Duration::from_secs(3600)),
                last_fetch: Some(Instant::now()),
            }),
            refresh: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
            min_refetch: Duration::from_secs(3600),
        };
        GoogleVerifier::new(CLIENT_ID.into(), jwks)
    }

    fn signed() -> String {
        let claims = serde_json::json!({
            "iss": "https://accounts.google.com",
            "aud": CLIENT_ID,
            "sub": "1234",
            "email": "ann@gmail.com",
            "email_verified": true,
            "iat": now_secs(),
            "exp": now_secs() + 3600,
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.into());
        let key = EncodingKey::from_rsa_der(&fixture("google_test_key_1.der"));
        jsonwebtoken::encode(&header, &claims, &key).expect("signing")
    }

    thread_local! {
        /// One runtime and one verifier per test thread (a client and a runtime per case
        /// would cost more than the cases).
        static CHECKER: (tokio::runtime::Runtime, GoogleVerifier) = (
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            verifier(),
        );
    }

    fn check(raw: &str) -> Result<GoogleIdentity, GoogleError> {
        let verdict =
            CHECKER.with(|(runtime, verifier)| runtime.block_on(verifier.verify(raw, None)));
        if let Err(e) = &verdict {
            assert!(!e.to_string().chars().any(char::is_control), "{e}");
        }
        verdict
    }

    fn part(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn the_signed_token_verifies() {
        assert_eq!(
            check(&signed()).map(|id| id.sub).ok().as_deref(),
            Some("1234")
        );
    }

    proptest! {
        // Refused before any key is touched: cheap, so as many cases as our own tokens get.
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn arbitrary_strings_are_refused(raw in "\\PC{0,300}") {
            prop_assert!(check(&raw).is_err());
        }
    }

    proptest! {
        // Each case that reaches the signature costs an RSA verification (slow in a debug
        // build): a few hundred cases cover the shapes.
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn token_shaped_garbage_is_refused(
            alg in prop::sample::select(vec!["RS256", "HS256", "none", "RS512", "ES256", "RS256\n"]),
            kid in prop::option::of(prop_oneof![Just(KID.to_owned()), "\\PC{0,40}"]),
            payload in "\\PC{0,120}",
            signature in "[A-Za-z0-9_-]{0,350}",
        ) {
            let header = serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string();
            let token = format!("{}.{}.{signature}", part(&header), part(&payload));
            prop_assert!(check(&token).is_err());
        }

        #[test]
        fn a_changed_byte_never_verifies_as_other_claims(
            at in any::<prop::sample::Index>(),
            with in b'-'..=b'z',
        ) {
            let token = signed();
            let mut bytes = token.clone().into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = with;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            if let Ok(identity) = check(&changed) {
                // Only a change the encoding absorbs (a base64 tail bit) may still verify.
                prop_assert_eq!(identity.sub, "1234");
            }
        }
    }
}
