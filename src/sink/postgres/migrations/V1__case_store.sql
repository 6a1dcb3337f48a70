-- tillsyn's case store, version 1: one row per alert, one row per episode
-- (its current state: the last alert's), and the sink's position in the
-- alert topic, written in the same transaction as the rows it produced.
-- Filled by `tillsyn sink postgres`; read by case-management systems and
-- `tillsyn cases`. No personal data: alerts carry provider ids and
-- municipality codes, never client or staff references.

CREATE TABLE alerts (
    alert_id              text PRIMARY KEY,
    episode_id            text NOT NULL,
    -- 0 for the opening alert, then 1, 2, ...
    revision              integer NOT NULL,
    -- opened | escalated | resolved
    status                text NOT NULL,
    -- low | medium | high | critical, and its rank 1..4 for sorting
    severity              text NOT NULL,
    severity_rank         smallint NOT NULL,
    rule_id               text NOT NULL,
    rule_version          integer NOT NULL,
    -- the fraud pattern number of the domain catalogue
    pattern               integer NOT NULL,
    configuration_version integer NOT NULL,
    score                 double precision NOT NULL,
    provider_id           text NOT NULL,
    municipality_code     text NOT NULL,
    window_start          timestamptz,
    window_end            timestamptz,
    observed_value        double precision,
    observed_unit         text,
    expected_value        double precision,
    expected_unit         text,
    -- in the service's configured language
    explanation           text NOT NULL,
    -- every language the alert carries: {"sv": "...", "en": "..."}
    explanations          jsonb NOT NULL DEFAULT '{}'::jsonb,
    evidence_event_ids    text[] NOT NULL,
    -- event time of the decision
    detected_at           timestamptz NOT NULL,
    -- where it was read, and when it was produced there
    topic                 text NOT NULL,
    kafka_partition       integer NOT NULL,
    kafka_offset          bigint NOT NULL,
    produced_at           timestamptz,
    stored_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_by_episode ON alerts (episode_id, revision);
CREATE INDEX alerts_by_provider ON alerts (provider_id, detected_at);

CREATE TABLE episodes (
    episode_id            text PRIMARY KEY,
    rule_id               text NOT NULL,
    pattern               integer NOT NULL,
    provider_id           text NOT NULL,
    municipality_code     text NOT NULL,
    -- the last alert's (highest revision)
    status                text NOT NULL,
    severity              text NOT NULL,
    severity_rank         smallint NOT NULL,
    last_revision         integer NOT NULL,
    last_alert_id         text NOT NULL,
    score                 double precision NOT NULL,
    window_start          timestamptz,
    window_end            timestamptz,
    observed_value        double precision,
    observed_unit         text,
    expected_value        double precision,
    expected_unit         text,
    explanation           text NOT NULL,
    explanations          jsonb NOT NULL DEFAULT '{}'::jsonb,
    evidence_event_ids    text[] NOT NULL,
    -- the earliest and latest detection among its alerts
    first_detected_at     timestamptz NOT NULL,
    last_detected_at      timestamptz NOT NULL,
    alert_count           integer NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX episodes_open ON episodes (status, severity_rank DESC, first_detected_at);
CREATE INDEX episodes_by_municipality_rule ON episodes (municipality_code, rule_id);

CREATE TABLE sink_positions (
    consumer_group        text NOT NULL,
    topic                 text NOT NULL,
    kafka_partition       integer NOT NULL,
    -- the next offset to write: every record before it is in the tables
    next_offset           bigint NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);
