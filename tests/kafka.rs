//! The service against a real Kafka-protocol broker: see `kafka/broker.rs`.
//!
//! These tests need a broker on 127.0.0.1 (`TILLSYN_TEST_BROKERS`), so they
//! are behind the `kafka-integration-tests` feature: `scripts/test.sh` (the
//! README's test command, and CI) installs and starts tansu and turns it
//! on. By hand: `deploy/local/broker.sh start`, then
//! `cargo test --features kafka-integration-tests --test kafka`.

#[cfg(feature = "kafka-integration-tests")]
#[path = "kafka/broker.rs"]
mod broker;

#[cfg(not(feature = "kafka-integration-tests"))]
#[test]
#[ignore = "needs a broker: run scripts/test.sh, or deploy/local/broker.sh start and \
            cargo test --features kafka-integration-tests --test kafka"]
fn broker_tests_are_off_without_the_kafka_integration_tests_feature() {}
