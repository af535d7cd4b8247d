//! What every scenario does first: sign users in through the dev login.

use anyhow::Context;

/// An access token for `handle` (the server needs `AUTH_DEV_LOGIN=true` and an auth rate
/// limit high enough for the run).
pub async fn sign_in(http: &reqwest::Client, url: &str, handle: &str) -> anyhow::Result<String> {
    let res = http
        .post(format!("{url}/api/v1/auth/dev"))
        .json(&serde_json::json!({ "handle": handle }))
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "dev sign-in of {handle} answered {} (is AUTH_DEV_LOGIN=true and the auth rate limit raised?)",
        res.status()
    );
    let body: serde_json::Value = res.json().await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token in the sign-in answer")
}
