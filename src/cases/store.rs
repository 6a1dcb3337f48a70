//! What the view reads from the case store (`src/sink/postgres/migrations`):
//! the open episodes with a filter, the filters' choices, one episode and
//! its alerts. Reads only; the rows are plain data for [`super::pages`].

use std::cmp::Ordering;
use std::time::SystemTime;

use tokio_postgres::{Client, Row};

/// The statuses of an open episode.
pub const OPEN_STATUSES: [&str; 2] = ["opened", "escalated"];

/// The list's filters (`municipality`, `rule`; none: all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// A municipality code.
    pub municipality: Option<String>,
    /// A rule id.
    pub rule: Option<String>,
}

impl Filter {
    /// The filter of the query parameters: empty or blank values are none.
    pub fn new(municipality: Option<&str>, rule: Option<&str>) -> Filter {
        let set = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        Filter { municipality: set(municipality), rule: set(rule) }
    }
}

/// A value with its unit, as the alert carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub value: f64,
    pub unit: String,
}

fn measure(value: Option<f64>, unit: Option<String>) -> Option<Measure> {
    Some(Measure { value: value?, unit: unit.unwrap_or_default() })
}

/// An episode as the list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeSummary {
    pub episode_id: String,
    pub rule_id: String,
    pub provider_id: String,
    pub municipality_code: String,
    pub status: String,
    pub severity: String,
    /// 1 (low) to 4 (critical).
    pub severity_rank: i16,
    pub first_detected_at: SystemTime,
    pub last_detected_at: SystemTime,
    pub alert_count: i32,
    pub observed: Option<Measure>,
    pub expected: Option<Measure>,
}

/// The list's order: the most severe first, then the oldest (first
/// detected earliest), then by id (a stable order for equal ones).
pub fn list_order(a: &EpisodeSummary, b: &EpisodeSummary) -> Ordering {
    b.severity_rank
        .cmp(&a.severity_rank)
        .then(a.first_detected_at.cmp(&b.first_detected_at))
        .then_with(|| a.episode_id.cmp(&b.episode_id))
}

/// The same order in SQL (the index `episodes_open` serves it).
const LIST_ORDER_SQL: &str = "severity_rank DESC, first_detected_at ASC, episode_id ASC";

/// One page of the list: the first episodes in [`list_order`], and how
/// many match in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenEpisodes {
    pub episodes: Vec<EpisodeSummary>,
    pub total: i64,
}

/// The open episodes matching `filter`, at most `limit`, in [`list_order`].
pub async fn open_episodes(
    client: &Client,
    filter: &Filter,
    limit: usize,
) -> Result<OpenEpisodes, tokio_postgres::Error> {
    let sql = format!(
        "SELECT episode_id, rule_id, provider_id, municipality_code, status, severity, severity_rank, \
         first_detected_at, last_detected_at, alert_count, observed_value, observed_unit, expected_value, \
         expected_unit, count(*) OVER () AS total \
         FROM episodes WHERE status = ANY($1) AND ($2::text IS NULL OR municipality_code = $2) \
         AND ($3::text IS NULL OR rule_id = $3) ORDER BY {LIST_ORDER_SQL} LIMIT $4"
    );
    let statuses: Vec<&str> = OPEN_STATUSES.to_vec();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client.query(&sql, &[&statuses, &filter.municipality, &filter.rule, &limit]).await?;
    let total = rows.first().map_or(0, |r| r.get::<_, i64>("total"));
    let mut episodes: Vec<EpisodeSummary> = rows.iter().map(summary).collect();
    // The database's collation may order ids differently; the order is ours.
    episodes.sort_by(list_order);
    Ok(OpenEpisodes { episodes, total })
}

fn summary(r: &Row) -> EpisodeSummary {
    EpisodeSummary {
        episode_id: r.get("episode_id"),
        rule_id: r.get("rule_id"),
        provider_id: r.get("provider_id"),
        municipality_code: r.get("municipality_code"),
        status: r.get("status"),
        severity: r.get("severity"),
        severity_rank: r.get("severity_rank"),
        first_detected_at: r.get("first_detected_at"),
        last_detected_at: r.get("last_detected_at"),
        alert_count: r.get("alert_count"),
        observed: measure(r.get("observed_value"), r.get("observed_unit")),
        expected: measure(r.get("expected_value"), r.get("expected_unit")),
    }
}

/// The filters' choices: the municipalities and rules of open episodes,
/// sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choices {
    pub municipalities: Vec<String>,
    pub rules: Vec<String>,
}

/// The municipalities and rules that have open episodes.
pub async fn choices(client: &Client) -> Result<Choices, tokio_postgres::Error> {
    let statuses: Vec<&str> = OPEN_STATUSES.to_vec();
    let column = |name: &str| format!("SELECT DISTINCT {name} FROM episodes WHERE status = ANY($1)");
    let sorted = |rows: Vec<Row>| {
        let mut values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        values.sort();
        values
    };
    Ok(Choices {
        municipalities: sorted(client.query(&column("municipality_code"), &[&statuses]).await?),
        rules: sorted(client.query(&column("rule_id"), &[&statuses]).await?),
    })
}

/// An episode as its page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub summary: EpisodeSummary,
    pub pattern: i32,
    pub score: f64,
    pub window_start: Option<SystemTime>,
    pub window_end: Option<SystemTime>,
    /// In the service's configured language.
    pub explanation: String,
    /// Every language's (`{"sv": ..., "en": ...}`; `{}` before the alerts
    /// carried translations).
    pub explanations: serde_json::Value,
    /// The latest alert's evidence.
    pub evidence_event_ids: Vec<String>,
}

/// One alert of an episode's history.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEntry {
    pub alert_id: String,
    pub revision: i32,
    pub status: String,
    pub severity: String,
    pub detected_at: SystemTime,
    pub configuration_version: i32,
    pub rule_version: i32,
    pub score: f64,
    pub observed: Option<Measure>,
    pub expected: Option<Measure>,
}

/// The episode `id`, if the store has it.
pub async fn episode(client: &Client, id: &str) -> Result<Option<Episode>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT episode_id, rule_id, provider_id, municipality_code, status, severity, severity_rank, \
             first_detected_at, last_detected_at, alert_count, observed_value, observed_unit, expected_value, \
             expected_unit, pattern, score, window_start, window_end, explanation, explanations, \
             evidence_event_ids FROM episodes WHERE episode_id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| Episode {
        summary: summary(&r),
        pattern: r.get("pattern"),
        score: r.get("score"),
        window_start: r.get("window_start"),
        window_end: r.get("window_end"),
        explanation: r.get("explanation"),
        explanations: r.get("explanations"),
        evidence_event_ids: r.get("evidence_event_ids"),
    }))
}

/// The alerts of episode `id`, by revision.
pub async fn history(client: &Client, id: &str) -> Result<Vec<AlertEntry>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT alert_id, revision, status, severity, detected_at, configuration_version, rule_version, score, \
             observed_value, observed_unit, expected_value, expected_unit FROM alerts WHERE episode_id = $1 \
             ORDER BY revision, alert_id",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AlertEntry {
            alert_id: r.get("alert_id"),
            revision: r.get("revision"),
            status: r.get("status"),
            severity: r.get("severity"),
            detected_at: r.get("detected_at"),
            configuration_version: r.get("configuration_version"),
            rule_version: r.get("rule_version"),
            score: r.get("score"),
            observed: measure(r.get("observed_value"), r.get("observed_unit")),
            expected: measure(r.get("expected_value"), r.get("expected_unit")),
        })
        .collect())
}

/// Whether the schema the view reads is there (`tillsyn sink postgres`
/// creates it).
pub async fn has_schema(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT to_regclass('episodes') IS NOT NULL AND to_regclass('alerts') IS NOT NULL", &[])
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// An open episode for the tests: `rank` 1..=4, first detected
    /// `day` days into 2026.
    pub fn summary(id: &str, rank: i16, day: u64) -> EpisodeSummary {
        let severity = ["low", "medium", "high", "critical"][usize::from(rank as u8 - 1)];
        let at = UNIX_EPOCH + Duration::from_secs(1_767_225_600 + day * 86_400 + 9 * 3_600);
        EpisodeSummary {
            episode_id: id.into(),
            rule_id: "invoiced-above-performed".into(),
            provider_id: "556100-0013".into(),
            municipality_code: "2480".into(),
            status: "opened".into(),
            severity: severity.into(),
            severity_rank: rank,
            first_detected_at: at,
            last_detected_at: at + Duration::from_secs(3_600),
            alert_count: 1,
            observed: Some(Measure { value: 412.5, unit: "hours".into() }),
            expected: Some(Measure { value: 320.0, unit: "hours".into() }),
        }
    }

    #[test]
    fn the_most_severe_come_first_then_the_oldest() {
        let mut list = [
            summary("a", 2, 1),
            summary("b", 4, 20),
            summary("c", 3, 5),
            summary("d", 4, 3),
            summary("e", 3, 5),
            summary("f", 1, 0),
        ];
        list.sort_by(list_order);
        let ids: Vec<&str> = list.iter().map(|e| e.episode_id.as_str()).collect();
        assert_eq!(ids, ["d", "b", "c", "e", "a", "f"]);
    }

    #[test]
    fn blank_filters_are_none() {
        assert_eq!(Filter::new(Some(""), Some("  ")), Filter::default());
        assert_eq!(
            Filter::new(Some(" 2480 "), None),
            Filter { municipality: Some("2480".into()), rule: None },
            "trimmed"
        );
    }
}
