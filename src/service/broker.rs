//! Talking to the brokers: a first contact that tells a wrong password or
//! an untrusted certificate at once, and metadata requests that a dropped
//! connection does not fail.
//!
//! librdkafka reports an authentication or TLS failure only through the
//! client's error callback, and then tries again for ever: a command with a
//! wrong password would wait for its request timeout and end with "timed
//! out". [`probe`] makes the first contact with a client whose callback it
//! watches, and fails at once with the broker's reason.
//!
//! librdkafka answers an application's metadata or watermark request with
//! `BrokerTransportFailure` (or `AllBrokersDown`) when the connection it
//! sent the request on goes down before the answer, and does not send it
//! again: the application must. A broker that closes an idle or busy
//! connection, a restart or a network blip would otherwise stop a tool or a
//! restore that would have succeeded a moment later. These wrappers send
//! the request again, after a short pause, until their deadline; any other
//! error (a topic that does not exist, an authorization failure) is
//! returned at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use super::config::ServiceConfig;

/// The pause between two attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Whether `error` is a lost or missing connection: the same request may
/// succeed when sent again.
pub fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::LeaderNotAvailable
        )
    )
}

/// Runs `request` with the time left until `timeout` has passed since the
/// first attempt, again while it fails with a transient error and time is
/// left.
pub fn retrying<T>(timeout: Duration, mut request: impl FnMut(Duration) -> KafkaResult<T>) -> KafkaResult<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match request(left.max(Duration::from_millis(1))) {
            Err(e) if is_transient(&e) && left > RETRY_PAUSE => std::thread::sleep(RETRY_PAUSE),
            other => return other,
        }
    }
}

/// The metadata of `topic` (of every topic if `None`), as
/// [`Client::fetch_metadata`], sent again after a transient failure until
/// `timeout`.
pub fn metadata<C: ClientContext>(client: &Client<C>, topic: Option<&str>, timeout: Duration) -> KafkaResult<Metadata> {
    retrying(timeout, |left| client.fetch_metadata(topic, left))
}

/// The low and high watermarks of `topic`'s `partition`, as
/// [`Client::fetch_watermarks`], sent again after a transient failure
/// until `timeout`.
pub fn watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> KafkaResult<(i64, i64)> {
    retrying(timeout, |left| client.fetch_watermarks(topic, partition, left))
}

/// [`probe`] on a blocking thread, for async callers.
pub async fn probe_async(config: &ServiceConfig) -> anyhow::Result<()> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || probe(&config)).await?
}

/// A security failure reported by librdkafka: a wrong password or
/// mechanism, or a certificate the client does not trust.
pub fn security_failure(error: &KafkaError, reason: &str) -> Option<&'static str> {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::Authentication) => Some(
            "authentication with the brokers failed (check kafka.common sasl.mechanisms, sasl.username and \
             sasl.password)",
        ),
        Some(RDKafkaErrorCode::SSL) => Some("the TLS handshake with the brokers failed (check ssl.ca.location)"),
        // librdkafka reports some handshake failures as a transport failure.
        Some(RDKafkaErrorCode::BrokerTransportFailure) if reason.contains("certificate verify failed") => {
            Some("the brokers' certificate is not trusted (check ssl.ca.location)")
        }
        _ => None,
    }
}

/// How long security failures must go on, with no pause of
/// [`STREAK_GAP`], before a running service gives up: a wrong password
/// fails about 20 times a second for ever, while a broker that refuses a
/// re-authentication now and then (tansu 0.6.0 does, every 54 s) recovers
/// within a second.
pub const SECURITY_PERSISTENT: Duration = Duration::from_secs(30);

/// A pause in security failures that ends a streak.
const STREAK_GAP: Duration = Duration::from_secs(3);

/// Security failures of a running client over time (see
/// [`SECURITY_PERSISTENT`]).
#[derive(Debug, Default)]
pub struct SecurityStreak {
    streak: Mutex<Option<Streak>>,
}

#[derive(Debug)]
struct Streak {
    first: Instant,
    last: Instant,
    what: String,
}

impl SecurityStreak {
    /// Takes one error of the client's error callback, at `now`.
    pub fn record_at(&self, now: Instant, error: &KafkaError, reason: &str) {
        let Some(what) = security_failure(error, reason) else { return };
        let mut streak = self.streak.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match streak.as_mut() {
            Some(s) if now.saturating_duration_since(s.last) < STREAK_GAP => s.last = now,
            _ => *streak = Some(Streak { first: now, last: now, what: format!("{what}: {reason}") }),
        }
    }

    /// Why the client cannot use the brokers, if security failures have
    /// gone on for `lasting` up to `now`.
    pub fn persistent_at(&self, now: Instant, lasting: Duration) -> Option<String> {
        let streak = self.streak.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        streak
            .as_ref()
            .filter(|s| now.saturating_duration_since(s.last) < STREAK_GAP && s.last - s.first >= lasting)
            .map(|s| format!("{} (failing for {} s)", s.what, (s.last - s.first).as_secs()))
    }
}

/// A client context that keeps the first security failure reported.
#[derive(Default)]
struct Watch {
    failure: Mutex<Option<String>>,
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka error during the first contact");
        if let Some(what) = security_failure(&error, reason) {
            let mut failure = self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            failure.get_or_insert_with(|| format!("{what}: {reason}"));
        }
    }
}

impl ConsumerContext for Watch {}

/// Makes the first contact with the brokers of `config` (a metadata
/// request), before a command relies on them. Fails at once, with the
/// broker's reason, on an authentication or TLS failure, and after
/// `kafka.connect_timeout` if no broker answers (a TLS client against a
/// plaintext listener only ever times out).
pub fn probe(config: &ServiceConfig) -> anyhow::Result<()> {
    let timeout = config.kafka.connect_timeout;
    let mut client = config.kafka.consumer_config();
    // Statistics are the group consumer's (lag, readiness); this client
    // would only log them.
    client.set("statistics.interval.ms", "0");
    client.set("group.id", format!("{}-probe", config.kafka.group_id));
    let consumer: BaseConsumer<Watch> = client.create_with_context(Watch::default())?;
    let deadline = Instant::now() + timeout;
    let mut last = None;
    // Each attempt may take twice as long as the one before (up to 8 s):
    // a broker that is slow to answer, not only one that is down, gets
    // its answer in.
    let mut attempt = Duration::from_millis(500);
    loop {
        // Serves the error callback (the client is in no group: nothing
        // else comes).
        let _ = consumer.poll(Duration::from_millis(50));
        let failure = consumer.context().failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(failure) = failure {
            anyhow::bail!("cannot use the brokers at {}: {failure}", config.kafka.brokers);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            anyhow::bail!(
                "no broker at {} answered within {} s{}",
                config.kafka.brokers,
                timeout.as_secs(),
                last.map_or(String::new(), |e: KafkaError| format!(" (last error: {e})"))
            );
        }
        match consumer.client().fetch_metadata(None, left.min(attempt)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        attempt = (attempt * 2).min(Duration::from_secs(8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport() -> KafkaError {
        KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure)
    }

    #[test]
    fn only_security_failures_that_go_on_make_a_streak() {
        let streak = SecurityStreak::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let auth = KafkaError::Global(RDKafkaErrorCode::Authentication);
        let lasting = Duration::from_secs(30);
        // A broker's passing refusal: a second of failures, then quiet.
        for ms in (0..1_000).step_by(100) {
            streak.record_at(at(ms), &auth, "invalid-proof");
        }
        assert_eq!(streak.persistent_at(at(1_000), lasting), None);
        // Other errors never count.
        streak.record_at(at(10_000), &transport(), "connection refused");
        // A wrong password: failures all along.
        for ms in (60_000..89_000).step_by(50) {
            streak.record_at(at(ms), &auth, "invalid-proof");
        }
        assert!(streak.persistent_at(at(89_000), lasting).is_none(), "29 s so far");
        for ms in (89_000..95_000).step_by(50) {
            streak.record_at(at(ms), &auth, "invalid-proof");
        }
        let why = streak.persistent_at(at(95_000), lasting).expect("35 s of failures");
        assert!(why.starts_with("authentication with the brokers failed"), "{why}");
        assert!(why.contains("invalid-proof"), "{why}");
        assert_eq!(streak.persistent_at(at(99_000), lasting), None, "quiet for 4 s: over");
        let tls = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(security_failure(&tls, "ssl handshake: certificate verify failed").is_some());
        assert!(security_failure(&tls, "Connection refused").is_none());
    }

    #[test]
    fn a_transient_failure_is_sent_again_and_the_answer_returned() {
        let mut attempts = 0;
        let answer = retrying(Duration::from_secs(5), |_| {
            attempts += 1;
            if attempts < 3 { Err(transport()) } else { Ok(attempts) }
        });
        assert_eq!(answer.unwrap(), 3);
    }

    #[test]
    fn any_other_error_is_returned_at_once() {
        let mut attempts = 0;
        let answer: KafkaResult<()> = retrying(Duration::from_secs(5), |_| {
            attempts += 1;
            Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition))
        });
        assert!(answer.is_err());
        assert_eq!(attempts, 1);
    }

    #[test]
    fn a_failure_that_lasts_is_returned_at_the_deadline() {
        let started = Instant::now();
        let mut attempts = 0;
        let answer: KafkaResult<()> = retrying(Duration::from_millis(700), |left| {
            attempts += 1;
            assert!(left <= Duration::from_millis(700));
            Err(transport())
        });
        assert!(is_transient(&answer.unwrap_err()));
        assert!(attempts >= 2, "{attempts}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
