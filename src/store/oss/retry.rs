//! Retry and timeout settings for every OSS request, in one place.
//!
//! A request is retried on a 5xx answer, a timeout, or a broken connection,
//! with exponential backoff and jitter; 4xx answers are final (except 408 and
//! 429, which mean "try again"). Only requests that are safe to repeat are
//! retried after a broken connection (see `client.rs`). Every body can be
//! sent again from its start (in memory or a staged file), so a retried part
//! or simple put sends exactly the same bytes. All attempts of one request
//! share one overall deadline.
//!
//! An endpoint that has not answered once in this process gets a much
//! shorter budget ([`RetryPolicy::first_answer_timeout`] per attempt,
//! [`RetryPolicy::first_answer_deadline`] in all): a dead or hung endpoint
//! fails in under 30 s, while transfers to one that answers keep the idle
//! timeout (`--timeout`) and the overall deadline (`--deadline`).

use std::time::Duration;

/// How hard to try. [`RetryPolicy::default`] documents the defaults.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (default 5).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each retry (default 200 ms).
    pub base_backoff: Duration,
    /// Upper bound of one wait (default 10 s).
    pub max_backoff: Duration,
    /// TCP + TLS connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// One attempt, until the endpoint has answered once in this process
    /// (default 10 s, plus 1 s per MiB sent).
    pub first_answer_timeout: Duration,
    /// All attempts of a request, until the endpoint has answered once in
    /// this process (default 25 s, plus 1 s per MiB sent).
    pub first_answer_deadline: Duration,
    /// Longest silence while reading a response (default 60 s): a stalled
    /// server counts as a failed attempt.
    pub idle_timeout: Duration,
    /// Whole-request deadline is `idle_timeout + body / min_throughput`
    /// (default 1 MiB/s), so a 5 GiB part gets time but a hung one does not.
    pub min_throughput: u64,
    /// All attempts of one request (waits included) end within
    /// `max_elapsed + body / min_throughput` (default 10 min).
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            first_answer_timeout: Duration::from_secs(10),
            first_answer_deadline: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            min_throughput: 1 << 20,
            max_elapsed: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 = first retry), with up to 25%
    /// jitter so parallel parts do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let jitter = capped.mul_f64(f64::from(nanos % 1000) / 4000.0);
        capped + jitter
    }

    /// The deadline of one attempt of a request that sends `body_len` bytes.
    pub fn request_timeout(&self, body_len: u64) -> Duration {
        self.idle_timeout + Duration::from_secs(body_len / self.min_throughput.max(1))
    }

    /// The deadline of all attempts together of a request that sends `body_len` bytes.
    pub fn overall_deadline(&self, body_len: u64) -> Duration {
        self.max_elapsed + self.sending(body_len)
    }

    /// The deadline of one attempt and of all attempts of a request that
    /// sends `body_len` bytes, to an endpoint that has `answered` before or not.
    pub fn budget(&self, body_len: u64, answered: bool) -> (Duration, Duration) {
        let overall = self.overall_deadline(body_len);
        if answered {
            return (overall, overall);
        }
        let attempt = self.first_answer_timeout + self.sending(body_len);
        (attempt.min(overall), (self.first_answer_deadline + self.sending(body_len)).min(overall))
    }

    fn sending(&self, body_len: u64) -> Duration {
        Duration::from_secs(body_len / self.min_throughput.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        assert!(policy.backoff(1) >= Duration::from_millis(200) && policy.backoff(1) < Duration::from_millis(260));
        assert!(policy.backoff(3) >= Duration::from_millis(800));
        assert!(policy.backoff(30) <= Duration::from_millis(12_500));
        assert_eq!(policy.request_timeout(5 << 30), Duration::from_secs(60 + 5 * 1024));
        assert_eq!(policy.overall_deadline(5 << 30), Duration::from_secs(600 + 5 * 1024));
    }

    #[test]
    fn an_endpoint_that_never_answered_fails_within_30_s() {
        let policy = RetryPolicy::default();
        let (attempt, all) = policy.budget(0, false);
        assert_eq!((attempt, all), (Duration::from_secs(10), Duration::from_secs(25)));
        // A large body still gets its sending time; once answered, the full deadline.
        assert_eq!(policy.budget(64 << 20, false), (Duration::from_secs(74), Duration::from_secs(89)));
        assert_eq!(policy.budget(0, true), (Duration::from_secs(600), Duration::from_secs(600)));
        let tight = RetryPolicy { max_elapsed: Duration::from_secs(5), ..RetryPolicy::default() };
        assert_eq!(tight.budget(0, false), (Duration::from_secs(5), Duration::from_secs(5)));
    }
}
