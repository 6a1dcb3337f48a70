//! The case store's SQL: connecting, the schema's migrations, the stored
//! positions, and one batch's transaction (see [`super::plan`] for what it
//! carries out).

use std::collections::BTreeMap;

use anyhow::Context as _;
use tokio_postgres::{Client, NoTls};

use super::plan::{AlertRow, Plan};

mod embedded {
    refinery::embed_migrations!("src/sink/postgres/migrations");
}

/// The channel `NOTIFY` tells of every committed batch (its payload is the
/// number of alert rows it added), for views that update themselves.
pub const CHANGES_CHANNEL: &str = "tillsyn_case_store";

/// Connects; the connection's task runs until the client is dropped or the
/// connection fails (then every call on the client fails).
pub async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "case store connection ended");
        }
    });
    Ok(client)
}

/// Brings the schema to the newest version (versioned migrations in
/// `src/sink/postgres/migrations`, applied once each, in order, recorded in
/// `refinery_schema_history`). Returns the versions applied now.
pub async fn migrate(client: &mut Client) -> anyhow::Result<Vec<i32>> {
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await
        .context("migrating the case store's schema")?;
    Ok(report.applied_migrations().iter().map(|m| m.version()).collect())
}

/// The newest schema version this build knows.
pub fn schema_version() -> i32 {
    embedded::migrations::runner().get_migrations().iter().map(|m| m.version()).max().unwrap_or(0)
}

/// The stored positions of `partitions` of `topic` for `group` (none for a
/// partition with no row yet).
pub async fn positions(
    client: &Client,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, Option<i64>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT kafka_partition, next_offset FROM sink_positions \
             WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3)",
            &[&group, &topic, &partitions],
        )
        .await?;
    let mut positions: BTreeMap<i32, Option<i64>> = partitions.iter().map(|p| (*p, None)).collect();
    for row in rows {
        positions.insert(row.get(0), Some(row.get(1)));
    }
    Ok(positions)
}

/// How a batch's transaction ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Committed: this many new alert rows.
    Committed { new_rows: u64, already_stored: u64 },
    /// Rolled back: these partitions' positions were not the ones read
    /// (another member moved them).
    Fenced(Vec<i32>),
}

const INSERT_ALERT: &str = "INSERT INTO alerts (alert_id, episode_id, revision, status, severity, severity_rank, \
     rule_id, rule_version, pattern, configuration_version, score, provider_id, municipality_code, window_start, \
     window_end, observed_value, observed_unit, expected_value, expected_unit, explanation, explanations, \
     evidence_event_ids, detected_at, topic, kafka_partition, kafka_offset, produced_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
     $23, $24, $25, $26, $27) ON CONFLICT (alert_id) DO NOTHING";

/// The columns of an episode that are its newest alert's.
const LATEST: [&str; 15] = [
    "status",
    "severity",
    "severity_rank",
    "last_revision",
    "last_alert_id",
    "score",
    "window_start",
    "window_end",
    "observed_value",
    "observed_unit",
    "expected_value",
    "expected_unit",
    "explanation",
    "explanations",
    "evidence_event_ids",
];

/// The episode takes the newest alert's state (highest revision), whatever
/// order its alerts are written in; counts and detection times accumulate.
fn upsert_episode_sql() -> String {
    let latest: Vec<String> = LATEST
        .iter()
        .map(|c| format!("{c} = CASE WHEN EXCLUDED.last_revision > e.last_revision THEN EXCLUDED.{c} ELSE e.{c} END"))
        .collect();
    format!(
        "INSERT INTO episodes AS e (episode_id, rule_id, pattern, provider_id, municipality_code, {}, \
         first_detected_at, last_detected_at, alert_count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
         $21, 1) \
         ON CONFLICT (episode_id) DO UPDATE SET alert_count = e.alert_count + 1, \
         first_detected_at = LEAST(e.first_detected_at, EXCLUDED.first_detected_at), \
         last_detected_at = GREATEST(e.last_detected_at, EXCLUDED.last_detected_at), updated_at = now(), {}",
        LATEST.join(", "),
        latest.join(", ")
    )
}

/// Moves a position on the condition that it is still the one read.
const MOVE_POSITION: &str = "UPDATE sink_positions SET next_offset = $4, updated_at = now() \
     WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3 AND next_offset = $5";

/// Creates a position where there was none (fails on a row someone made).
const CREATE_POSITION: &str = "INSERT INTO sink_positions (consumer_group, topic, kafka_partition, next_offset) \
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

/// Carries out `plan` in one transaction: positions first (fenced), then
/// the alert rows (a row already there is left as it is) and, for each new
/// one, its episode; a notification on [`CHANGES_CHANNEL`]; commit.
pub async fn write(client: &mut Client, group: &str, topic: &str, plan: &Plan) -> anyhow::Result<Written> {
    let tx = client.transaction().await?;
    let mut fenced = Vec::new();
    for m in &plan.moves {
        let changed = match m.from {
            Some(from) => tx.execute(MOVE_POSITION, &[&group, &topic, &m.partition, &m.to, &from]).await?,
            None => tx.execute(CREATE_POSITION, &[&group, &topic, &m.partition, &m.to]).await?,
        };
        if changed != 1 {
            fenced.push(m.partition);
        }
    }
    if !fenced.is_empty() {
        tx.rollback().await?;
        return Ok(Written::Fenced(fenced));
    }
    let insert = tx.prepare(INSERT_ALERT).await?;
    let upsert = tx.prepare(&upsert_episode_sql()).await?;
    let mut new_rows = 0;
    let mut already_stored = 0;
    for (partition, offset, row) in &plan.rows {
        if insert_alert(&tx, &insert, topic, *partition, *offset, row).await? == 1 {
            new_rows += 1;
            upsert_episode(&tx, &upsert, row).await?;
        } else {
            already_stored += 1;
        }
    }
    if new_rows > 0 {
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANGES_CHANNEL, &new_rows.to_string()]).await?;
    }
    tx.commit().await?;
    Ok(Written::Committed { new_rows, already_stored })
}

async fn insert_alert(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &tokio_postgres::Statement,
    topic: &str,
    partition: i32,
    offset: i64,
    r: &AlertRow,
) -> Result<u64, tokio_postgres::Error> {
    let (observed_value, observed_unit) = r.observed.clone().unzip();
    let (expected_value, expected_unit) = r.expected.clone().unzip();
    tx.execute(
        statement,
        &[
            &r.alert_id,
            &r.episode_id,
            &r.revision,
            &r.status,
            &r.severity,
            &r.severity_rank,
            &r.rule_id,
            &r.rule_version,
            &r.pattern,
            &r.configuration_version,
            &r.score,
            &r.provider_id,
            &r.municipality_code,
            &r.window_start,
            &r.window_end,
            &observed_value,
            &observed_unit,
            &expected_value,
            &expected_unit,
            &r.explanation,
            &r.explanations,
            &r.evidence_event_ids,
            &r.detected_at,
            &topic,
            &partition,
            &offset,
            &r.produced_at,
        ],
    )
    .await
}

async fn upsert_episode(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &tokio_postgres::Statement,
    r: &AlertRow,
) -> Result<u64, tokio_postgres::Error> {
    let (observed_value, observed_unit) = r.observed.clone().unzip();
    let (expected_value, expected_unit) = r.expected.clone().unzip();
    tx.execute(
        statement,
        &[
            &r.episode_id,
            &r.rule_id,
            &r.pattern,
            &r.provider_id,
            &r.municipality_code,
            &r.status,
            &r.severity,
            &r.severity_rank,
            &r.revision,
            &r.alert_id,
            &r.score,
            &r.window_start,
            &r.window_end,
            &observed_value,
            &observed_unit,
            &expected_value,
            &expected_unit,
            &r.explanation,
            &r.explanations,
            &r.evidence_event_ids,
            &r.detected_at,
        ],
    )
    .await
}
