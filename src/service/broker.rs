//! Metadata requests that a dropped connection does not fail.
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

use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn transport() -> KafkaError {
        KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure)
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
