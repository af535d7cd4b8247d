//! The Gemini budget in Redis, shared by every node: requests and input tokens per sliding
//! minute, requests per Pacific day, and one pause for all.
//!
//! Each grant is a member `id:tokens` of a sorted set scored by Redis's own clock (so nodes'
//! clocks do not matter), checked and added atomically by one Lua script. The window is a
//! minute plus a margin, so a request that reaches Google a little after it was granted still
//! counts in Google's window as it does in ours. The day is Google's: it starts at midnight in
//! America/Los_Angeles (daylight saving time included). A model's keys share one hash tag, so
//! that on a Redis Cluster the scripts touching several of them run in one slot.

use std::sync::Arc;
use std::time::Duration;

use crate::redis_store::RedisConn;
use aisocial_actors::ai_pool::budget::{AiBudget, BudgetAnswer, BudgetError, Reservation};
use aisocial_actors::error_chain::Chain;
use chrono::{Duration as ChronoDuration, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS: window set, day counter, pause flag. ARGV: window ms, rpm, tpm, rpd, tokens, id,
/// ms until the day resets. Returns {1, 0} granted, {0, ms} wait, {-1, ms} the day is used up,
/// {-2, 0} too large for a minute.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local rpd = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
if tokens > tpm then return {-2, 0} end
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then return {0, paused} end
local day = tonumber(redis.call('GET', KEYS[2]) or '0')
if day >= rpd then return {-1, tonumber(ARGV[7])} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
if #entries / 2 >= rpm then
  return {0, math.max(1, tonumber(entries[2]) + window - now)}
end
local used = 0
for i = 1, #entries, 2 do
  used = used + tonumber(string.match(entries[i], ':(%d+)$') or '0')
end
if used + tokens > tpm then
  local left = used
  for i = 1, #entries, 2 do
    left = left - tonumber(string.match(entries[i], ':(%d+)$') or '0')
    if left + tokens <= tpm then
      return {0, math.max(1, tonumber(entries[i + 1]) + window - now)}
    end
  end
  return {0, window}
end
redis.call('ZADD', KEYS[1], now, ARGV[6] .. ':' .. tokens)
redis.call('PEXPIRE', KEYS[1], window + 1000)
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]) + 3600000)
return {1, 0}
";

/// KEYS: window set. ARGV: the reserved member, the member with the counted tokens.
const RECONCILE: &str = r"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[1], score, ARGV[2])
end
return 0
";

/// KEYS: day counter. ARGV: the day's limit, ms until the day resets. The day is used up.
const EXHAUST: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]) + 3600000)
return 0
";

/// KEYS: pause flag. ARGV: ms. Only lengthens a pause.
const PAUSE: &str = r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
";

/// KEYS: window set, day counter, pause flag. ARGV: window ms. Reads only: {requests in the
/// window, tokens in the window, requests today, pause ms left}.
const USAGE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entries = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
local used = 0
for i = 1, #entries do
  used = used + tonumber(string.match(entries[i], ':(%d+)$') or '0')
end
local day = tonumber(redis.call('GET', KEYS[2]) or '0')
return {#entries, used, day, math.max(0, redis.call('PTTL', KEYS[3]))}
";

/// How much of the budget is used right now, across every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub requests_in_window: u64,
    pub tokens_in_window: u64,
    pub requests_today: u64,
    pub paused: Duration,
}

/// The limits one model's budget enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub rpm: u32,
    pub tpm: u32,
    pub rpd: u32,
    pub window_margin: Duration,
}

pub struct RedisBudget {
    redis: RedisConn,
    /// `{prefix}{ai:<model>}:` (see [`budget_keys`]).
    keys: String,
    limits: Limits,
    scripts: Arc<Scripts>,
}

struct Scripts {
    reserve: redis::Script,
    reconcile: redis::Script,
    pause: redis::Script,
    exhaust: redis::Script,
    usage: redis::Script,
}

impl RedisBudget {
    pub fn new(redis: RedisConn, prefix: &str, model: &str, limits: Limits) -> Self {
        Self {
            redis,
            keys: budget_keys(prefix, model),
            limits,
            scripts: Arc::new(Scripts {
                reserve: redis::Script::new(RESERVE),
                reconcile: redis::Script::new(RECONCILE),
                pause: redis::Script::new(PAUSE),
                usage: redis::Script::new(USAGE),
                exhaust: redis::Script::new(EXHAUST),
            }),
        }
    }
}

/// The start of one model's budget keys (window, day counters, pause), which the scripts use
/// together: hash-tagged, so that a Redis Cluster keeps them in one slot.
fn budget_keys(prefix: &str, model: &str) -> String {
    crate::redis_store::tagged(prefix, &format!("ai:{model}"))
}

/// The Pacific day at `now` (its date) and how long until it ends.
fn pacific_day_at(now: chrono::DateTime<Utc>) -> (String, Duration) {
    let local = now.naive_utc() + ChronoDuration::hours(pacific_offset_hours(now));
    let next_midnight = (local.date() + ChronoDuration::days(1)).and_time(chrono::NaiveTime::MIN);
    // The next midnight may fall in the other offset (the night the clocks change).
    let next_utc = next_midnight - ChronoDuration::hours(pacific_offset_hours(now));
    let next_utc = next_utc
        - ChronoDuration::hours(
            pacific_offset_hours(next_utc.and_utc()) - pacific_offset_hours(now),
        );
    let left = (next_utc - now.naive_utc())
        .to_std()
        .unwrap_or(Duration::from_secs(86_400));
    (local.format("%Y%m%d").to_string(), left)
}

pub fn pacific_day() -> (String, Duration) {
    pacific_day_at(Utc::now())
}

/// UTC−7 while US daylight saving time holds (from 02:00 on the second Sunday of March to
/// 02:00 on the first Sunday of November, local time), else UTC−8.
fn pacific_offset_hours(at: chrono::DateTime<Utc>) -> i64 {
    use chrono::{Datelike, NaiveDate, Weekday};
    let year = at.year();
    let nth_sunday = |month: u32, n: u32| {
        NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n as u8).unwrap_or_default()
    };
    // 02:00 PST is 10:00 UTC; 02:00 PDT is 09:00 UTC.
    let starts = nth_sunday(3, 2).and_hms_opt(10, 0, 0).unwrap_or_default();
    let ends = nth_sunday(11, 1).and_hms_opt(9, 0, 0).unwrap_or_default();
    let t = at.naive_utc();
    if t >= starts && t < ends { -7 } else { -8 }
}

impl RedisBudget {
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The budget used right now (every node's grants), read without changing it.
    pub async fn usage(&self) -> Result<Usage, BudgetError> {
        let mut redis = self.redis.clone();
        let (day, _) = pacific_day();
        let window = Duration::from_secs(60) + self.limits.window_margin;
        let mut invocation = self.scripts.usage.prepare_invoke();
        invocation
            .key(format!("{}window", self.keys))
            .key(format!("{}day:{day}", self.keys))
            .key(format!("{}paused", self.keys))
            .arg(u64::try_from(window.as_millis()).unwrap_or(61_000));
        let (requests, tokens, today, paused_ms): (u64, u64, u64, u64) =
            timed(invocation.invoke_async(&mut redis)).await?;
        Ok(Usage {
            requests_in_window: requests,
            tokens_in_window: tokens,
            requests_today: today,
            paused: Duration::from_millis(paused_ms),
        })
    }
}

async fn timed<T>(
    future: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, BudgetError> {
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(REDIS_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(BudgetError::Store(Box::new(e))),
        Err(_) => Err(BudgetError::TimedOut(REDIS_TIMEOUT)),
    };
    crate::redis_store::observe("ai_budget", started, result.is_ok());
    result
}

impl AiBudget for RedisBudget {
    fn exhaust_today(&self, at_least: Duration) -> BoxFuture<'static, Duration> {
        let mut redis = self.redis.clone();
        let scripts = Arc::clone(&self.scripts);
        let keys = self.keys.clone();
        let rpd = self.limits.rpd;
        async move {
            let (day, left) = pacific_day();
            let mut invocation = scripts.exhaust.prepare_invoke();
            invocation
                .key(format!("{keys}day:{day}"))
                .arg(rpd)
                .arg(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
            if let Err(error) = timed(invocation.invoke_async::<i64>(&mut redis)).await {
                tracing::warn!(error = %Chain(&error), "could not share that the AI quota is used up today");
            }
            left.max(at_least)
        }
        .boxed()
    }

    fn reserve(&self, tokens: u32) -> BoxFuture<'static, Result<BudgetAnswer, BudgetError>> {
        let mut redis = self.redis.clone();
        let scripts = Arc::clone(&self.scripts);
        let keys = self.keys.clone();
        let limits = self.limits;
        async move {
            let (day, day_left) = pacific_day();
            let window = Duration::from_secs(60) + limits.window_margin;
            let id = uuid::Uuid::new_v4().simple().to_string();
            let day_left_ms = u64::try_from(day_left.as_millis()).unwrap_or(u64::MAX);
            let mut invocation = scripts.reserve.prepare_invoke();
            invocation
                .key(format!("{keys}window"))
                .key(format!("{keys}day:{day}"))
                .key(format!("{keys}paused"))
                .arg(u64::try_from(window.as_millis()).unwrap_or(61_000))
                .arg(limits.rpm)
                .arg(limits.tpm)
                .arg(limits.rpd)
                .arg(tokens)
                .arg(&id)
                .arg(day_left_ms);
            let (verdict, millis): (i64, i64) = timed(invocation.invoke_async(&mut redis)).await?;
            let wait = Duration::from_millis(u64::try_from(millis.max(1)).unwrap_or(1));
            Ok(match verdict {
                1 => BudgetAnswer::Granted(Reservation { id, tokens }),
                -1 => BudgetAnswer::ExhaustedForToday(wait),
                -2 => BudgetAnswer::TooLarge,
                _ => BudgetAnswer::Wait(wait),
            })
        }
        .boxed()
    }

    fn reconcile(&self, reservation: Reservation, actual: u32) -> BoxFuture<'static, ()> {
        let mut redis = self.redis.clone();
        let scripts = Arc::clone(&self.scripts);
        let key = format!("{}window", self.keys);
        async move {
            if actual == 0 || actual == reservation.tokens {
                return;
            }
            let mut invocation = scripts.reconcile.prepare_invoke();
            invocation
                .key(key)
                .arg(format!("{}:{}", reservation.id, reservation.tokens))
                .arg(format!("{}:{actual}", reservation.id));
            if let Err(error) = timed(invocation.invoke_async::<i64>(&mut redis)).await {
                tracing::warn!(error = %Chain(&error), "could not reconcile AI tokens; the estimate stands");
            }
        }
        .boxed()
    }

    fn pause(&self, pause: Duration) -> BoxFuture<'static, ()> {
        let mut redis = self.redis.clone();
        let scripts = Arc::clone(&self.scripts);
        let key = format!("{}paused", self.keys);
        async move {
            let millis = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut invocation = scripts.pause.prepare_invoke();
            invocation.key(key).arg(millis);
            if let Err(error) = timed(invocation.invoke_async::<i64>(&mut redis)).await {
                tracing::warn!(error = %Chain(&error), "could not share the AI pause; other nodes learn it from their own 429s");
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("bad date")
    }

    #[test]
    fn a_models_budget_keys_share_one_cluster_slot() {
        use crate::redis_store::cluster::slot_of;
        let keys = budget_keys("aisocial:", "gemini-2.5-flash");
        assert_eq!(keys, "aisocial:{ai:gemini-2.5-flash}:");
        let window = slot_of(&format!("{keys}window"));
        assert_eq!(window, slot_of(&format!("{keys}day:20260101")));
        assert_eq!(window, slot_of(&format!("{keys}paused")));
    }

    #[test]
    fn the_day_is_googles_pacific_day_with_daylight_saving_time() {
        // Winter: UTC−8. 07:59 UTC on 15 January is 23:59 on the 14th.
        let (day, left) = pacific_day_at(at(2026, 1, 15, 7, 59));
        assert_eq!(day, "20260114");
        assert_eq!(left, Duration::from_secs(60));
        // Summer: UTC−7. 07:00 UTC on 15 July is midnight starting the 15th.
        let (day, left) = pacific_day_at(at(2026, 7, 15, 7, 0));
        assert_eq!(day, "20260715");
        assert_eq!(left, Duration::from_secs(86_400));
        // 2026's changes: 8 March 10:00 UTC and 1 November 09:00 UTC.
        assert_eq!(pacific_offset_hours(at(2026, 3, 8, 9, 59)), -8);
        assert_eq!(pacific_offset_hours(at(2026, 3, 8, 10, 0)), -7);
        assert_eq!(pacific_offset_hours(at(2026, 11, 1, 8, 59)), -7);
        assert_eq!(pacific_offset_hours(at(2026, 11, 1, 9, 0)), -8);
        // The night the clocks go back, the day is 25 hours: from 07:00 UTC on 1 November
        // (midnight PDT) to 08:00 UTC on 2 November (midnight PST).
        let (day, left) = pacific_day_at(at(2026, 11, 1, 7, 0));
        assert_eq!(day, "20261101");
        assert_eq!(left, Duration::from_secs(25 * 3600));
    }
}
