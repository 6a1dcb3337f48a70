//! Scores the alerts of a simulated run against the simulator's ground truth.
//!
//! Takes the alerts tillsyn produced ([`tillsyn_core::proto::v1::Alert`], read from
//! an NDJSON or protobuf file by [`tillsyn_core::codec`]) and the simulator's
//! [`GroundTruth`], and hands back an [`Evaluation`]: plain figures that
//! serialize to JSON and print as markdown tables (its `Display`).
//!
//! # Definitions
//!
//! - **Detections.** An episode is counted once: only alerts with status
//!   `ALERT_STATUS_OPENED` are detections. Escalations and resolutions are
//!   lifecycle updates of an episode already counted; they are only counted
//!   for information. Records repeating an `alert_id` already read
//!   (at-least-once delivery) are dropped and counted as duplicates.
//! - **Provider.** A provider in one municipality: a company with
//!   branches in two municipalities is two providers here, judged
//!   separately (an alert counts for a label only when both its provider
//!   id and its municipality code match), as tillsyn tracks them.
//! - **Label window.** A label of provider *p* covers `[start, end + grace]`
//!   (both ends included); `grace` is [`EvaluationOptions::grace_days`],
//!   45 days by default, because invoice-based patterns can only be seen
//!   once the month has been invoiced.
//! - **True alert (lenient).** An opened alert whose provider has a label
//!   whose window contains the alert's `detected_at`, whatever its pattern.
//!   **Strict:** the same, and the alert's `pattern` equals the label's.
//!   Every other opened alert is **false**. Alerts that cannot be judged are
//!   false too and also counted as *unknown*: a pattern outside 1–16, an
//!   empty rule id (or one outside [`EvaluationOptions::known_rule_ids`] when
//!   that is given), a provider not in `truth.providers`, or no `detected_at`.
//! - **Alert precision** (lenient / strict): true opened alerts / opened
//!   alerts.
//! - **Provider recall:** labelled providers with at least one true opened
//!   alert / labelled providers. **Provider precision:** providers with at
//!   least one true opened alert / providers with at least one opened alert.
//! - **Label recall, per pattern and overall:** a label is *detected* when an
//!   opened alert of the same provider and the same pattern number has its
//!   `detected_at` in the label window; recall = detected labels / labels.
//! - **Detection delay** of a detected label: the earliest matching alert's
//!   `detected_at` − the label's `observable_at`, in hours. Negative delays
//!   (the alert fired before the simulator thought the fraud observable)
//!   are clamped to 0 and counted. Median and p90 use the nearest-rank
//!   method (the value of rank ⌈p·n/100⌉ in the sorted delays). The median
//!   delay from the label's `start` is reported as well.
//! - **Intensity buckets.** A label's intensity (0 subtle – 1 blatant, drawn
//!   by the simulator) puts it in a bucket: subtle below 1/3, moderate
//!   below 2/3, blatant above. Label recall and delay are given per bucket
//!   and per pattern and bucket. A fraudulent provider's bucket is that of
//!   its most intense label (the one most likely to reveal it): provider
//!   recall per bucket counts the providers of the bucket with a true
//!   alert. Labels without an intensity (older ground truth) are in no
//!   bucket.
//! - **Clean provider-months:** for each provider of `truth.providers`, the
//!   time of `[truth.start, truth.end)` outside the union of its label
//!   windows, in months of 30.44 days, summed over providers.
//!   **False alerts per 100 clean provider-months** = false opened alerts /
//!   clean provider-months × 100 (all false alerts, including unknown ones).
//!   The same rate is given per rule id.
//!
//! A ratio with a zero denominator is *undefined*: `None` in Rust, `null` in
//! JSON, `n/a` in the tables; never NaN.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::ops::RangeInclusive;
use std::path::Path;

use anyhow::Context;

use crate::labels::{GroundTruth, IntensityBucket, Label};
use tillsyn_core::codec::MessageReader;
use tillsyn_core::model::time::EventTime;
use tillsyn_core::proto::v1::{Alert, AlertStatus};

/// Days in a month when converting durations to provider-months.
pub const DAYS_PER_MONTH: f64 = 30.44;

/// The pattern numbers of the domain catalogue.
pub const KNOWN_PATTERNS: RangeInclusive<u32> = 1..=16;

const NANOS_PER_SEC: i128 = 1_000_000_000;
const NANOS_PER_HOUR: f64 = 3_600.0 * 1e9;
const NANOS_PER_DAY: i128 = 86_400 * NANOS_PER_SEC;

/// A provider in one municipality: (provider id, municipality code).
type Unit<'a> = (&'a str, &'a str);

/// Knobs of the evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EvaluationOptions {
    /// Days after a label's `end` during which an alert still counts as
    /// detecting it (and during which the provider does not count as clean).
    /// Invoice patterns are only seen after the month is invoiced, so the
    /// default is 45 days.
    pub grace_days: u32,
    /// The rule ids tillsyn has. When given, opened alerts with another rule
    /// id count as unknown, hence false. When `None`, only an empty rule id
    /// is unknown.
    pub known_rule_ids: Option<BTreeSet<String>>,
}

impl Default for EvaluationOptions {
    fn default() -> Self {
        EvaluationOptions { grace_days: 45, known_rule_ids: None }
    }
}

/// The scores of one run. Ratios are `None` when their denominator is zero.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// The grace used, in days.
    pub grace_days: u32,
    /// First simulated instant, RFC 3339.
    pub period_start: String,
    /// End of the simulation (exclusive), RFC 3339.
    pub period_end: String,
    /// Providers in the ground truth.
    pub providers: usize,
    /// Distinct providers with at least one label.
    pub fraudulent_providers: usize,
    /// Labels (injected fraud scenarios).
    pub labels: usize,
    /// Alert records by status.
    pub alerts: AlertCounts,
    /// Opened alerts that are true (lenient: any label of the provider).
    pub true_alerts: usize,
    /// Opened alerts that are true with the label's pattern.
    pub true_alerts_strict: usize,
    /// Opened alerts that are not true (lenient), unknown ones included.
    pub false_alerts: usize,
    /// Opened alerts with an unknown pattern, rule or provider, or no
    /// `detected_at` (a subset of the false alerts).
    pub unknown_alerts: usize,
    /// `true_alerts / alerts.opened`.
    pub alert_precision: Option<f64>,
    /// `true_alerts_strict / alerts.opened`.
    pub alert_precision_strict: Option<f64>,
    /// Distinct providers with at least one opened alert.
    pub alerted_providers: usize,
    /// Distinct providers with at least one true opened alert.
    pub detected_providers: usize,
    /// `detected_providers / alerted_providers`.
    pub provider_precision: Option<f64>,
    /// `detected_providers / fraudulent_providers`.
    pub provider_recall: Option<f64>,
    /// Labels detected by an opened alert of their pattern.
    pub detected_labels: usize,
    /// `detected_labels / labels`.
    pub label_recall: Option<f64>,
    /// Detection delay over all detected labels.
    pub delay: DelayStats,
    /// Clean provider-months (months of 30.44 days).
    pub clean_provider_months: f64,
    /// `false_alerts / clean_provider_months × 100`.
    pub false_alerts_per_100_clean_provider_months: Option<f64>,
    /// One entry per pattern number that has labels, in pattern order.
    pub patterns: Vec<PatternEvaluation>,
    /// Recall and delay per intensity bucket (the buckets with labels).
    pub intensity: Vec<BucketEvaluation>,
    /// One entry per rule id with opened alerts, most false alerts first.
    pub rules: Vec<RuleEvaluation>,
}

/// Alert records read, by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertCounts {
    /// Records given, duplicates included.
    pub records: usize,
    /// Records dropped because their `alert_id` was already seen.
    pub duplicates: usize,
    /// `ALERT_STATUS_OPENED`: the detections.
    pub opened: usize,
    /// `ALERT_STATUS_ESCALATED` (information only).
    pub escalated: usize,
    /// `ALERT_STATUS_RESOLVED` (information only).
    pub resolved: usize,
    /// Unspecified or unknown status (ignored).
    pub other: usize,
}

/// Detection delays of detected labels, in hours.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DelayStats {
    /// Detected labels the figures are over.
    pub count: usize,
    /// Median delay from `observable_at` (nearest rank).
    pub median_hours: Option<f64>,
    /// 90th percentile of the delay from `observable_at` (nearest rank).
    pub p90_hours: Option<f64>,
    /// Median delay from the label's `start` (nearest rank).
    pub median_from_start_hours: Option<f64>,
    /// Delays that were negative and clamped to 0.
    pub clamped: usize,
    /// Every delay from `observable_at` (clamped to 0), ascending: for
    /// figures pooled over several runs (`scripts/evaluation_tables.py`).
    pub hours: Vec<f64>,
}

/// Recall and delay of one pattern.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatternEvaluation {
    /// Pattern number of the domain catalogue.
    pub pattern: u32,
    /// Pattern name, from the first label of the pattern.
    pub name: String,
    /// Labels of the pattern.
    pub labels: usize,
    /// Labels detected by an opened alert of the same pattern.
    pub detected: usize,
    /// `detected / labels`.
    pub recall: Option<f64>,
    /// Delays of the detected labels.
    pub delay: DelayStats,
    /// Labels and detected labels per intensity bucket (the buckets with
    /// labels).
    pub intensity: Vec<BucketCount>,
}

/// Labels of one intensity bucket and how many were detected.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketCount {
    /// The bucket.
    pub bucket: IntensityBucket,
    /// Labels in it.
    pub labels: usize,
    /// Of which detected.
    pub detected: usize,
}

/// Recall and delay of one intensity bucket.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketEvaluation {
    /// The bucket.
    pub bucket: IntensityBucket,
    /// Fraudulent providers whose most intense label is in the bucket.
    pub providers: usize,
    /// Of which with a true opened alert.
    pub detected_providers: usize,
    /// `detected_providers / providers`.
    pub provider_recall: Option<f64>,
    /// Labels in the bucket.
    pub labels: usize,
    /// Of which detected (an alert of the label's pattern).
    pub detected_labels: usize,
    /// `detected_labels / labels`.
    pub label_recall: Option<f64>,
    /// Delays of the detected labels.
    pub delay: DelayStats,
}

/// Opened alerts of one rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleEvaluation {
    /// The rule id (may be empty if alerts carried none).
    pub rule_id: String,
    /// The pattern numbers its opened alerts carried.
    pub patterns: Vec<u32>,
    /// Opened alerts of the rule.
    pub opened: usize,
    /// Of which true (lenient).
    pub true_alerts: usize,
    /// Of which false.
    pub false_alerts: usize,
    /// `false_alerts / clean provider-months × 100`.
    pub false_alerts_per_100_clean_provider_months: Option<f64>,
}

/// A timestamp as nanoseconds since the epoch (exact, no overflow).
fn nanos(ts: &pbjson_types::Timestamp) -> i128 {
    i128::from(ts.seconds) * NANOS_PER_SEC + i128::from(ts.nanos)
}

fn ratio(numerator: usize, denominator: usize) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// The value of rank ⌈p·n/100⌉ of `sorted` (ascending); `None` when empty.
fn nearest_rank(sorted: &[f64], percent: usize) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The delay of one detected label.
#[derive(Debug, Clone, Copy)]
struct LabelDelay {
    /// From `observable_at`, clamped to 0.
    hours: f64,
    /// From `start`.
    from_start_hours: f64,
    /// Whether `hours` was negative before clamping.
    clamped: bool,
}

/// Labels of one pattern: name, count, delays of the detected ones, and
/// labels and detected ones per intensity bucket.
struct PatternTally {
    name: String,
    labels: usize,
    delays: Vec<LabelDelay>,
    buckets: BTreeMap<IntensityBucket, (usize, usize)>,
}

/// Delay figures of detected labels.
fn delay_stats(delays: &[LabelDelay]) -> DelayStats {
    let mut observable: Vec<f64> = delays.iter().map(|d| d.hours).collect();
    let mut start: Vec<f64> = delays.iter().map(|d| d.from_start_hours).collect();
    observable.sort_by(f64::total_cmp);
    start.sort_by(f64::total_cmp);
    DelayStats {
        count: delays.len(),
        median_hours: nearest_rank(&observable, 50),
        p90_hours: nearest_rank(&observable, 90),
        median_from_start_hours: nearest_rank(&start, 50),
        clamped: delays.iter().filter(|d| d.clamped).count(),
        hours: observable,
    }
}

/// A label's window `[start, end + grace]` in nanoseconds.
fn window(label: &Label, grace: i128) -> (i128, i128) {
    (nanos(&label.start), nanos(&label.end) + grace)
}

/// Scores `alerts` against `truth`. See the module documentation for the
/// definitions.
pub fn evaluate(alerts: &[Alert], truth: &GroundTruth, options: &EvaluationOptions) -> Evaluation {
    let grace = i128::from(options.grace_days) * NANOS_PER_DAY;
    let known_providers: HashSet<Unit> =
        truth.providers.iter().map(|p| (p.provider_id.as_str(), p.municipality_code.as_str())).collect();
    let mut labels_of: HashMap<Unit, Vec<&Label>> = HashMap::new();
    for label in &truth.labels {
        labels_of.entry((label.provider_id.as_str(), label.municipality_code.as_str())).or_default().push(label);
    }

    // Keep the opened alerts, once per alert id.
    let mut counts = AlertCounts { records: alerts.len(), ..AlertCounts::default() };
    let mut seen_ids: HashSet<&str> = HashSet::new();
    let mut opened: Vec<&Alert> = Vec::new();
    for alert in alerts {
        if !alert.alert_id.is_empty() && !seen_ids.insert(alert.alert_id.as_str()) {
            counts.duplicates += 1;
            continue;
        }
        match AlertStatus::try_from(alert.status) {
            Ok(AlertStatus::Opened) => {
                counts.opened += 1;
                opened.push(alert);
            }
            Ok(AlertStatus::Escalated) => counts.escalated += 1,
            Ok(AlertStatus::Resolved) => counts.resolved += 1,
            Ok(AlertStatus::Unspecified) | Err(_) => counts.other += 1,
        }
    }

    // Judge each opened alert.
    let mut unknown_alerts = 0;
    let mut true_alerts = 0;
    let mut true_alerts_strict = 0;
    let mut alerted_providers: HashSet<Unit> = HashSet::new();
    let mut detected_providers: HashSet<Unit> = HashSet::new();
    let mut rules: BTreeMap<&str, (BTreeSet<u32>, usize, usize)> = BTreeMap::new();
    // Valid opened alert times by (provider, pattern), for label detection.
    let mut times: HashMap<(Unit, u32), Vec<i128>> = HashMap::new();
    for alert in &opened {
        let unit = (alert.provider_id.as_str(), alert.municipality_code.as_str());
        alerted_providers.insert(unit);
        let rule = rules.entry(alert.rule_id.as_str()).or_default();
        rule.0.insert(alert.pattern);
        rule.1 += 1;
        let rule_known = match &options.known_rule_ids {
            Some(known) => known.contains(&alert.rule_id),
            None => !alert.rule_id.is_empty(),
        };
        let detected_at = match &alert.detected_at {
            Some(ts) if rule_known && KNOWN_PATTERNS.contains(&alert.pattern) && known_providers.contains(&unit) => {
                nanos(ts)
            }
            _ => {
                unknown_alerts += 1;
                continue;
            }
        };
        times.entry((unit, alert.pattern)).or_default().push(detected_at);
        let covering = labels_of.get(&unit).into_iter().flatten().filter(|label| {
            let (from, to) = window(label, grace);
            (from..=to).contains(&detected_at)
        });
        let mut lenient = false;
        let mut strict = false;
        for label in covering {
            lenient = true;
            strict |= label.pattern == alert.pattern;
        }
        if lenient {
            true_alerts += 1;
            rule.2 += 1;
            detected_providers.insert(unit);
        }
        if strict {
            true_alerts_strict += 1;
        }
    }
    for list in times.values_mut() {
        list.sort_unstable();
    }

    // Detect labels and measure delays, per pattern.
    let mut by_pattern: BTreeMap<u32, PatternTally> = BTreeMap::new();
    let mut all_delays: Vec<LabelDelay> = Vec::new();
    let mut by_bucket: BTreeMap<IntensityBucket, (usize, Vec<LabelDelay>)> = BTreeMap::new();
    for label in &truth.labels {
        let entry = by_pattern.entry(label.pattern).or_insert_with(|| PatternTally {
            name: label.pattern_name.clone(),
            labels: 0,
            delays: Vec::new(),
            buckets: BTreeMap::new(),
        });
        entry.labels += 1;
        if let Some(bucket) = label.bucket() {
            entry.buckets.entry(bucket).or_default().0 += 1;
            by_bucket.entry(bucket).or_default().0 += 1;
        }
        let (from, to) = window(label, grace);
        let first = times
            .get(&((label.provider_id.as_str(), label.municipality_code.as_str()), label.pattern))
            .and_then(|list| list.get(list.partition_point(|&t| t < from)))
            .filter(|&&t| t <= to);
        if let Some(&t) = first {
            let raw = (t - nanos(&label.observable_at)) as f64 / NANOS_PER_HOUR;
            let delay = LabelDelay {
                hours: raw.max(0.0),
                from_start_hours: (t - from) as f64 / NANOS_PER_HOUR,
                clamped: raw < 0.0,
            };
            entry.delays.push(delay);
            all_delays.push(delay);
            if let Some(bucket) = label.bucket() {
                entry.buckets.entry(bucket).or_default().1 += 1;
                by_bucket.entry(bucket).or_default().1.push(delay);
            }
        }
    }
    // Each fraudulent provider in the bucket of its most intense label.
    let mut provider_bucket: BTreeMap<Unit, IntensityBucket> = BTreeMap::new();
    for label in &truth.labels {
        if let Some(bucket) = label.bucket() {
            let unit = (label.provider_id.as_str(), label.municipality_code.as_str());
            let b = provider_bucket.entry(unit).or_insert(bucket);
            *b = (*b).max(bucket);
        }
    }
    let intensity: Vec<BucketEvaluation> = by_bucket
        .into_iter()
        .map(|(bucket, (labels, delays))| {
            let providers: Vec<&Unit> = provider_bucket.iter().filter(|(_, b)| **b == bucket).map(|(u, _)| u).collect();
            let detected_providers = providers.iter().filter(|u| detected_providers.contains(**u)).count();
            BucketEvaluation {
                bucket,
                providers: providers.len(),
                detected_providers,
                provider_recall: ratio(detected_providers, providers.len()),
                labels,
                detected_labels: delays.len(),
                label_recall: ratio(delays.len(), labels),
                delay: delay_stats(&delays),
            }
        })
        .collect();
    let patterns: Vec<PatternEvaluation> = by_pattern
        .into_iter()
        .map(|(pattern, tally)| PatternEvaluation {
            pattern,
            name: tally.name,
            labels: tally.labels,
            detected: tally.delays.len(),
            recall: ratio(tally.delays.len(), tally.labels),
            delay: delay_stats(&tally.delays),
            intensity: tally
                .buckets
                .into_iter()
                .map(|(bucket, (labels, detected))| BucketCount { bucket, labels, detected })
                .collect(),
        })
        .collect();
    let clean_provider_months = clean_provider_months(truth, &labels_of, grace);
    let per_100 = |false_alerts: usize| {
        (clean_provider_months > 0.0).then(|| false_alerts as f64 / clean_provider_months * 100.0)
    };
    let false_alerts = counts.opened - true_alerts;
    let mut rules: Vec<RuleEvaluation> = rules
        .into_iter()
        .map(|(rule_id, (patterns, opened, true_alerts))| RuleEvaluation {
            rule_id: rule_id.to_owned(),
            patterns: patterns.into_iter().collect(),
            opened,
            true_alerts,
            false_alerts: opened - true_alerts,
            false_alerts_per_100_clean_provider_months: per_100(opened - true_alerts),
        })
        .collect();
    rules.sort_by(|a, b| b.false_alerts.cmp(&a.false_alerts).then_with(|| a.rule_id.cmp(&b.rule_id)));

    let detected_labels = all_delays.len();
    Evaluation {
        grace_days: options.grace_days,
        period_start: EventTime(truth.start.seconds).to_string(),
        period_end: EventTime(truth.end.seconds).to_string(),
        providers: truth.providers.len(),
        fraudulent_providers: labels_of.len(),
        labels: truth.labels.len(),
        true_alerts,
        true_alerts_strict,
        false_alerts,
        unknown_alerts,
        alert_precision: ratio(true_alerts, counts.opened),
        alert_precision_strict: ratio(true_alerts_strict, counts.opened),
        alerted_providers: alerted_providers.len(),
        detected_providers: detected_providers.len(),
        provider_precision: ratio(detected_providers.len(), alerted_providers.len()),
        provider_recall: ratio(detected_providers.len(), labels_of.len()),
        detected_labels,
        label_recall: ratio(detected_labels, truth.labels.len()),
        delay: delay_stats(&all_delays),
        clean_provider_months,
        false_alerts_per_100_clean_provider_months: per_100(false_alerts),
        patterns,
        intensity,
        rules,
        alerts: counts,
    }
}

/// Months of `[truth.start, truth.end)` outside every label window, summed
/// over the providers of the truth.
fn clean_provider_months(truth: &GroundTruth, labels_of: &HashMap<Unit, Vec<&Label>>, grace: i128) -> f64 {
    let (period_start, period_end) = (nanos(&truth.start), nanos(&truth.end));
    let period = (period_end - period_start).max(0);
    let mut clean: i128 = 0;
    for provider in &truth.providers {
        let mut windows: Vec<(i128, i128)> = labels_of
            .get(&(provider.provider_id.as_str(), provider.municipality_code.as_str()))
            .into_iter()
            .flatten()
            .map(|label| {
                let (from, to) = window(label, grace);
                (from.max(period_start), to.min(period_end))
            })
            .filter(|(from, to)| from < to)
            .collect();
        windows.sort_unstable();
        let mut covered: i128 = 0;
        let mut current: Option<(i128, i128)> = None;
        for (from, to) in windows {
            match current {
                Some((a, b)) if from <= b => current = Some((a, b.max(to))),
                _ => {
                    if let Some((a, b)) = current {
                        covered += b - a;
                    }
                    current = Some((from, to));
                }
            }
        }
        if let Some((a, b)) = current {
            covered += b - a;
        }
        clean += period - covered;
    }
    clean as f64 / NANOS_PER_DAY as f64 / DAYS_PER_MONTH
}

/// Reads an alerts file (NDJSON or length-delimited protobuf, by extension)
/// and a ground-truth file, and scores them.
pub fn evaluate_files(alerts: &Path, truth: &Path, options: &EvaluationOptions) -> anyhow::Result<Evaluation> {
    let truth_value = GroundTruth::read(truth).with_context(|| format!("reading ground truth {}", truth.display()))?;
    let mut reader = MessageReader::open(alerts).with_context(|| format!("opening alerts {}", alerts.display()))?;
    let mut records = Vec::new();
    while let Some(alert) =
        reader.next_message::<Alert>().with_context(|| format!("reading alerts {}", alerts.display()))?
    {
        records.push(alert);
    }
    Ok(evaluate(&records, &truth_value, options))
}

/// A ratio to three decimals, or `n/a`.
struct Ratio(Option<f64>);

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value:.3}"),
            None => f.write_str("n/a"),
        }
    }
}

/// A figure with `decimals` decimals, or `n/a`.
struct Figure(Option<f64>, usize);

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value:.*}", self.1),
            None => f.write_str("n/a"),
        }
    }
}

impl fmt::Display for Evaluation {
    /// Markdown: a summary table, recall per pattern, alerts by rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.alerts;
        writeln!(f, "### Summary")?;
        writeln!(f)?;
        writeln!(f, "Period {} to {}, grace {} days.", self.period_start, self.period_end, self.grace_days)?;
        writeln!(f)?;
        writeln!(f, "| figure | value |")?;
        writeln!(f, "|---|---:|")?;
        writeln!(f, "| providers (fraudulent) | {} ({}) |", self.providers, self.fraudulent_providers)?;
        writeln!(f, "| labels (detected) | {} ({}) |", self.labels, self.detected_labels)?;
        writeln!(f, "| opened alerts | {} |", a.opened)?;
        writeln!(f, "| escalated / resolved updates (not counted) | {} / {} |", a.escalated, a.resolved)?;
        writeln!(f, "| true alerts, lenient / strict | {} / {} |", self.true_alerts, self.true_alerts_strict)?;
        writeln!(f, "| false alerts (unknown rule/provider) | {} ({}) |", self.false_alerts, self.unknown_alerts)?;
        writeln!(
            f,
            "| alert precision, strict / lenient | {} / {} |",
            Ratio(self.alert_precision_strict),
            Ratio(self.alert_precision)
        )?;
        writeln!(
            f,
            "| provider precision | {} ({}/{}) |",
            Ratio(self.provider_precision),
            self.detected_providers,
            self.alerted_providers
        )?;
        writeln!(
            f,
            "| provider recall | {} ({}/{}) |",
            Ratio(self.provider_recall),
            self.detected_providers,
            self.fraudulent_providers
        )?;
        writeln!(f, "| label recall | {} |", Ratio(self.label_recall))?;
        writeln!(
            f,
            "| delay from observable, median / p90 (h) | {} / {} |",
            Figure(self.delay.median_hours, 1),
            Figure(self.delay.p90_hours, 1)
        )?;
        writeln!(f, "| delay from start, median (h) | {} |", Figure(self.delay.median_from_start_hours, 1))?;
        writeln!(f, "| delays clamped to 0 | {} |", self.delay.clamped)?;
        writeln!(f, "| clean provider-months | {:.1} |", self.clean_provider_months)?;
        writeln!(
            f,
            "| false alerts per 100 clean provider-months | {} |",
            Figure(self.false_alerts_per_100_clean_provider_months, 2)
        )?;
        if a.duplicates > 0 || a.other > 0 {
            writeln!(f, "| duplicate / unspecified-status records (ignored) | {} / {} |", a.duplicates, a.other)?;
        }

        writeln!(f)?;
        writeln!(f, "### Recall per pattern")?;
        writeln!(f)?;
        if self.patterns.is_empty() {
            writeln!(f, "No labels.")?;
        } else {
            writeln!(f, "| # | pattern | labels | detected | recall | median delay (h) | p90 delay (h) |")?;
            writeln!(f, "|---:|---|---:|---:|---:|---:|---:|")?;
            for p in &self.patterns {
                writeln!(
                    f,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    p.pattern,
                    p.name,
                    p.labels,
                    p.detected,
                    Ratio(p.recall),
                    Figure(p.delay.median_hours, 1),
                    Figure(p.delay.p90_hours, 1)
                )?;
            }
        }

        if !self.intensity.is_empty() {
            writeln!(f)?;
            writeln!(f, "### Recall by intensity")?;
            writeln!(f)?;
            writeln!(
                f,
                "| intensity | providers (detected) | provider recall | labels (detected) | label recall | median delay (h) | p90 delay (h) |"
            )?;
            writeln!(f, "|---|---:|---:|---:|---:|---:|---:|")?;
            for b in &self.intensity {
                writeln!(
                    f,
                    "| {} | {} ({}) | {} | {} ({}) | {} | {} | {} |",
                    b.bucket.name(),
                    b.providers,
                    b.detected_providers,
                    Ratio(b.provider_recall),
                    b.labels,
                    b.detected_labels,
                    Ratio(b.label_recall),
                    Figure(b.delay.median_hours, 1),
                    Figure(b.delay.p90_hours, 1)
                )?;
            }
            writeln!(f)?;
            writeln!(f, "Labels detected / labels, by pattern and intensity:")?;
            writeln!(f)?;
            writeln!(f, "| # | pattern | subtle | moderate | blatant |")?;
            writeln!(f, "|---:|---|---:|---:|---:|")?;
            for p in &self.patterns {
                let cell = |bucket: IntensityBucket| {
                    p.intensity
                        .iter()
                        .find(|c| c.bucket == bucket)
                        .map_or("-".to_string(), |c| format!("{}/{}", c.detected, c.labels))
                };
                let [s, m, b] = IntensityBucket::ALL.map(cell);
                writeln!(f, "| {} | {} | {s} | {m} | {b} |", p.pattern, p.name)?;
            }
        }

        writeln!(f)?;
        writeln!(f, "### False alerts by rule")?;
        writeln!(f)?;
        if self.rules.is_empty() {
            writeln!(f, "No opened alerts.")?;
        } else {
            writeln!(f, "| rule | pattern | opened | true | false | false per 100 clean provider-months |")?;
            writeln!(f, "|---|---|---:|---:|---:|---:|")?;
            for r in &self.rules {
                let rule = if r.rule_id.is_empty() { "(none)" } else { r.rule_id.as_str() };
                let patterns: Vec<String> = r.patterns.iter().map(u32::to_string).collect();
                writeln!(
                    f,
                    "| {} | {} | {} | {} | {} | {} |",
                    rule,
                    patterns.join(", "),
                    r.opened,
                    r.true_alerts,
                    r.false_alerts,
                    Figure(r.false_alerts_per_100_clean_provider_months, 2)
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::ProviderInfo;
    use pbjson_types::Timestamp;

    /// 2026-01-01T00:00:00Z.
    const T0: i64 = 1_767_225_600;
    const DAY: i64 = 86_400;
    const HOUR: i64 = 3_600;
    /// The simulated period: 304.4 days, exactly 10 months of 30.44 days.
    const PERIOD: i64 = 304 * DAY + 4 * DAY / 10;
    const FRAUD: &str = "556000-0001";
    const CLEAN: &str = "556000-0002";

    fn ts(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    fn provider(id: &str) -> ProviderInfo {
        ProviderInfo {
            provider_id: id.into(),
            municipality_code: "2480".into(),
            name: format!("Omsorg {id} AB"),
            municipal: false,
            clients: 40,
        }
    }

    /// A label from day `start` to day `end` (exclusive), observable at day `observable`.
    fn label(provider_id: &str, pattern: u32, start: i64, end: i64, observable: i64) -> Label {
        Label {
            provider_id: provider_id.into(),
            municipality_code: "2480".into(),
            pattern,
            pattern_name: format!("pattern {pattern}"),
            start: ts(T0 + start * DAY),
            end: ts(T0 + end * DAY),
            observable_at: ts(T0 + observable * DAY),
            intensity: None,
            note: String::new(),
        }
    }

    fn truth(labels: Vec<Label>) -> GroundTruth {
        GroundTruth {
            seed: 7,
            start: ts(T0),
            end: ts(T0 + PERIOD),
            providers: vec![provider(FRAUD), provider(CLEAN)],
            labels,
        }
    }

    /// The usual truth: one pattern-1 label at FRAUD over days 60–90, observable on day 62.
    fn one_label() -> GroundTruth {
        truth(vec![label(FRAUD, 1, 60, 90, 62)])
    }

    /// An opened alert of `pattern` at `provider`, detected `secs` after T0.
    fn opened(id: &str, provider_id: &str, pattern: u32, secs: i64) -> Alert {
        Alert {
            alert_id: id.into(),
            episode_id: format!("ep-{id}"),
            rule_id: format!("rule-{pattern}"),
            rule_version: 1,
            pattern,
            provider_id: provider_id.into(),
            municipality_code: "2480".into(),
            status: AlertStatus::Opened as i32,
            detected_at: Some(ts(T0 + secs)),
            ..Alert::default()
        }
    }

    fn with_status(mut alert: Alert, status: AlertStatus, revision: u32) -> Alert {
        alert.alert_id = format!("{}-{revision}", alert.alert_id);
        alert.status = status as i32;
        alert.revision = revision;
        alert
    }

    fn run(alerts: &[Alert], truth: &GroundTruth) -> Evaluation {
        evaluate(alerts, truth, &EvaluationOptions::default())
    }

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|a| (a - expected).abs() < 1e-9)
    }

    #[test]
    fn an_alert_inside_the_label_is_a_true_detection() {
        let e = run(&[opened("a", FRAUD, 1, 70 * DAY)], &one_label());
        assert_eq!((e.true_alerts, e.true_alerts_strict, e.false_alerts), (1, 1, 0));
        assert_eq!(e.alert_precision, Some(1.0));
        assert_eq!(e.alert_precision_strict, Some(1.0));
        assert_eq!((e.provider_precision, e.provider_recall), (Some(1.0), Some(1.0)));
        assert_eq!((e.detected_labels, e.label_recall), (1, Some(1.0)));
        assert_eq!(e.patterns[0].recall, Some(1.0));
    }

    #[test]
    fn recall_and_delay_are_given_by_intensity_bucket() {
        const THIRD: &str = "556000-0003";
        let with = |mut l: Label, intensity: f64| {
            l.intensity = Some(intensity);
            l
        };
        let mut t = truth(vec![
            // FRAUD: a subtle label (found, 2 days late) and a blatant one
            // of another pattern (not found): a blatant provider, found.
            with(label(FRAUD, 1, 60, 90, 62), 0.1),
            with(label(FRAUD, 5, 60, 90, 61), 0.9),
            // THIRD: one subtle label, not found.
            with(label(THIRD, 6, 30, 90, 31), 0.2),
            // CLEAN has no label; a label without intensity is in no bucket.
            label(CLEAN, 2, 100, 120, 100),
        ]);
        t.providers.push(provider(THIRD));
        let e = run(&[opened("a", FRAUD, 1, 64 * DAY)], &t);
        let [subtle, blatant] = e.intensity.as_slice() else { panic!("two buckets: {:?}", e.intensity) };
        assert_eq!(subtle.bucket, IntensityBucket::Subtle);
        assert_eq!((subtle.labels, subtle.detected_labels, subtle.providers, subtle.detected_providers), (2, 1, 1, 0));
        assert!(close(subtle.delay.median_hours, 48.0));
        assert_eq!(blatant.bucket, IntensityBucket::Blatant);
        assert_eq!(
            (blatant.labels, blatant.detected_labels, blatant.providers, blatant.detected_providers),
            (1, 0, 1, 1)
        );
        assert_eq!((blatant.label_recall, blatant.provider_recall), (Some(0.0), Some(1.0)));
        let p1 = e.patterns.iter().find(|p| p.pattern == 1).unwrap();
        assert_eq!(p1.intensity, vec![BucketCount { bucket: IntensityBucket::Subtle, labels: 1, detected: 1 }]);
        assert!(e.patterns.iter().find(|p| p.pattern == 2).unwrap().intensity.is_empty());
        let table = e.to_string();
        assert!(table.contains("| subtle | 1 (0) | 0.000 | 2 (1) | 0.500 | 48.0 | 48.0 |"), "{table}");
        assert!(table.contains("| 1 | pattern 1 | 1/1 | - | - |"), "{table}");
        assert_eq!(
            (IntensityBucket::of(0.0), IntensityBucket::of(0.34), IntensityBucket::of(1.0)).1,
            IntensityBucket::Moderate
        );
    }

    #[test]
    fn an_alert_at_a_clean_provider_is_false() {
        let e = run(&[opened("a", FRAUD, 1, 70 * DAY), opened("b", CLEAN, 1, 70 * DAY)], &one_label());
        assert_eq!((e.true_alerts, e.false_alerts), (1, 1));
        assert_eq!(e.alert_precision, Some(0.5));
        assert_eq!(e.provider_precision, Some(0.5), "two providers alerted, one fraudulent");
        assert_eq!(e.provider_recall, Some(1.0));
    }

    #[test]
    fn a_provider_is_judged_in_each_municipality_separately() {
        // FRAUD has a branch in 2460 too, honest there.
        let mut truth = one_label();
        truth.providers.push(ProviderInfo { municipality_code: "2460".into(), ..provider(FRAUD) });
        let elsewhere = Alert { municipality_code: "2460".into(), ..opened("b", FRAUD, 1, 70 * DAY) };
        let e = run(&[opened("a", FRAUD, 1, 70 * DAY), elsewhere.clone()], &truth);
        assert_eq!((e.true_alerts, e.false_alerts, e.unknown_alerts), (1, 1, 0));
        assert_eq!((e.alerted_providers, e.detected_providers, e.fraudulent_providers), (2, 1, 1));
        // Only the branch in 2460 alerted: the label is not detected.
        let e = run(&[elsewhere], &truth);
        assert_eq!((e.true_alerts, e.detected_labels), (0, 0));
        // A municipality the truth does not know: unknown.
        let stranger = Alert { municipality_code: "0180".into(), ..opened("c", FRAUD, 1, 70 * DAY) };
        assert_eq!(run(&[stranger], &truth).unknown_alerts, 1);
    }

    #[test]
    fn an_alert_before_the_label_start_is_false() {
        let e = run(&[opened("a", FRAUD, 1, 60 * DAY - 1)], &one_label());
        assert_eq!((e.true_alerts, e.false_alerts), (0, 1));
        assert_eq!(e.detected_labels, 0);
        assert_eq!(e.provider_recall, Some(0.0));
    }

    #[test]
    fn an_alert_after_end_plus_grace_is_false_and_at_it_true() {
        let last = (90 + 45) * DAY;
        let at_edge = run(&[opened("a", FRAUD, 1, last)], &one_label());
        assert_eq!((at_edge.true_alerts, at_edge.detected_labels), (1, 1));
        let late = run(&[opened("a", FRAUD, 1, last + 1)], &one_label());
        assert_eq!((late.true_alerts, late.false_alerts, late.detected_labels), (0, 1, 0));
        let shorter = EvaluationOptions { grace_days: 10, ..EvaluationOptions::default() };
        let e = evaluate(&[opened("a", FRAUD, 1, 101 * DAY)], &one_label(), &shorter);
        assert_eq!(e.false_alerts, 1, "the grace is a knob");
    }

    #[test]
    fn escalations_and_resolutions_are_not_detections() {
        let first = opened("a", FRAUD, 1, 70 * DAY);
        let alerts = vec![
            with_status(opened("a", CLEAN, 1, 80 * DAY), AlertStatus::Escalated, 1),
            with_status(opened("a", CLEAN, 1, 90 * DAY), AlertStatus::Resolved, 2),
            first,
        ];
        let e = run(&alerts, &one_label());
        assert_eq!((e.alerts.opened, e.alerts.escalated, e.alerts.resolved), (1, 1, 1));
        assert_eq!((e.true_alerts, e.false_alerts), (1, 0));
        assert_eq!(e.alerted_providers, 1);
        assert_eq!(e.alert_precision, Some(1.0));
    }

    #[test]
    fn a_repeated_alert_id_is_counted_once() {
        let a = opened("a", CLEAN, 1, 70 * DAY);
        let e = run(&[a.clone(), a], &one_label());
        assert_eq!((e.alerts.records, e.alerts.duplicates, e.alerts.opened, e.false_alerts), (2, 1, 1, 1));
    }

    #[test]
    fn strict_precision_needs_the_labels_pattern() {
        let e = run(&[opened("a", FRAUD, 1, 70 * DAY), opened("b", FRAUD, 3, 71 * DAY)], &one_label());
        assert_eq!((e.true_alerts, e.true_alerts_strict), (2, 1));
        assert_eq!(e.alert_precision, Some(1.0));
        assert_eq!(e.alert_precision_strict, Some(0.5));
        assert_eq!(e.detected_labels, 1);
    }

    #[test]
    fn a_wrong_pattern_does_not_detect_a_label() {
        let e = run(&[opened("b", FRAUD, 3, 71 * DAY)], &one_label());
        assert_eq!((e.true_alerts, e.detected_labels, e.label_recall), (1, 0, Some(0.0)));
        assert_eq!(e.provider_recall, Some(1.0), "provider recall is lenient");
    }

    #[test]
    fn delay_is_from_observable_with_negatives_clamped() {
        let labels = vec![
            label(FRAUD, 1, 60, 90, 62),    // detected 10 h after observable
            label(FRAUD, 2, 60, 90, 65),    // detected 2 days before observable: clamped
            label(CLEAN, 3, 100, 130, 100), // undetected
        ];
        let alerts = [opened("a", FRAUD, 1, 62 * DAY + 10 * HOUR), opened("b", FRAUD, 2, 63 * DAY)];
        let mut truth = truth(labels);
        truth.providers.push(provider("556000-0003"));
        let e = run(&alerts, &truth);
        assert_eq!(e.delay.count, 2);
        assert_eq!(e.delay.clamped, 1);
        // Sorted delays [0, 10]: median rank ⌈1⌉ = 0, p90 rank ⌈1.8⌉ = 10.
        assert_eq!(e.delay.median_hours, Some(0.0));
        assert_eq!(e.delay.p90_hours, Some(10.0));
        // From start: [58, 72] hours → median 58.
        assert_eq!(e.delay.median_from_start_hours, Some(58.0));
        assert_eq!(e.patterns[0].delay.median_hours, Some(10.0));
        assert_eq!(e.patterns[1].delay.clamped, 1);
        assert_eq!(e.patterns[2].delay.median_hours, None);
    }

    #[test]
    fn delay_uses_the_first_matching_alert_and_nearest_rank() {
        let labels: Vec<Label> = (0..10).map(|i| label(FRAUD, 1, 10 * i, 10 * i + 5, 10 * i)).collect();
        // Label i is detected i + 1 hours after it became observable. A later
        // alert must not replace the first one, and the alerts of earlier
        // labels (before this label's start) must not count.
        let mut alerts: Vec<Alert> =
            (0..10).map(|i| opened(&format!("a{i}"), FRAUD, 1, 10 * i * DAY + (i + 1) * HOUR)).collect();
        alerts.push(opened("late", FRAUD, 1, 10 * DAY + 30 * HOUR));
        let e = run(&alerts, &truth(labels));
        assert_eq!(e.detected_labels, 10);
        assert_eq!(e.delay.median_hours, Some(5.0), "rank ⌈10·0.5⌉ = 5");
        assert_eq!(e.delay.p90_hours, Some(9.0), "rank ⌈10·0.9⌉ = 9");
        assert_eq!(e.delay.clamped, 0);
        let hours: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(e.delay.hours, hours, "every label's delay, ascending, for pooling");
    }

    #[test]
    fn clean_provider_months_exclude_label_windows_with_grace() {
        // Clean provider: 10 months. FRAUD: windows [60, 135] and [120, 180]
        // merge to [60, 180] days; [290, 304.4+] is clipped at the period end.
        let labels = vec![label(FRAUD, 1, 60, 90, 60), label(FRAUD, 2, 120, 135, 120), label(FRAUD, 3, 290, 400, 290)];
        let e = run(&[], &truth(labels));
        let fraud_clean_days = 304.4 - 120.0 - 14.4;
        let expected = 10.0 + fraud_clean_days / DAYS_PER_MONTH;
        assert!(close(Some(e.clean_provider_months), expected), "{} vs {expected}", e.clean_provider_months);
    }

    #[test]
    fn false_alerts_per_100_clean_provider_months_and_by_rule() {
        // Clean months: CLEAN 10, FRAUD 10 − 75 days.
        let clean_months = 10.0 + (304.4 - 75.0) / DAYS_PER_MONTH;
        let mut other_rule = opened("c", CLEAN, 5, 20 * DAY);
        other_rule.rule_id = "manual-registrations".into();
        let alerts = [
            opened("a", FRAUD, 1, 70 * DAY),
            opened("b", FRAUD, 1, 200 * DAY),
            opened("d", CLEAN, 1, 5 * DAY),
            other_rule,
        ];
        let e = run(&alerts, &one_label());
        assert_eq!(e.false_alerts, 3);
        assert!(close(e.false_alerts_per_100_clean_provider_months, 3.0 / clean_months * 100.0));
        let rules: Vec<(&str, usize, usize)> =
            e.rules.iter().map(|r| (r.rule_id.as_str(), r.true_alerts, r.false_alerts)).collect();
        assert_eq!(rules, vec![("rule-1", 1, 2), ("manual-registrations", 0, 1)]);
        assert!(close(e.rules[1].false_alerts_per_100_clean_provider_months, 100.0 / clean_months));
    }

    #[test]
    fn a_pattern_without_detections_has_recall_zero() {
        let labels = vec![label(FRAUD, 1, 60, 90, 62), label(FRAUD, 9, 30, 200, 40), label(CLEAN, 9, 30, 200, 40)];
        let e = run(&[opened("a", FRAUD, 1, 70 * DAY)], &truth(labels));
        let nine = e.patterns.iter().find(|p| p.pattern == 9).expect("pattern 9 row");
        assert_eq!((nine.labels, nine.detected, nine.recall), (2, 0, Some(0.0)));
        assert_eq!(nine.delay.median_hours, None);
        assert_eq!(nine.name, "pattern 9");
        assert!(close(e.label_recall, 1.0 / 3.0));
    }

    #[test]
    fn unknown_pattern_rule_or_provider_is_false() {
        let mut no_rule = opened("b", FRAUD, 1, 71 * DAY);
        no_rule.rule_id.clear();
        let mut no_time = opened("e", FRAUD, 1, 71 * DAY);
        no_time.detected_at = None;
        let mut stranger = opened("c", FRAUD, 1, 72 * DAY);
        stranger.provider_id = "999999-9999".into();
        let alerts = [opened("a", FRAUD, 17, 70 * DAY), no_rule, stranger, no_time];
        let e = run(&alerts, &one_label());
        assert_eq!((e.true_alerts, e.false_alerts, e.unknown_alerts), (0, 4, 4));
        assert_eq!(e.detected_labels, 0);

        let known = EvaluationOptions {
            known_rule_ids: Some(["rule-2".to_owned()].into_iter().collect()),
            ..EvaluationOptions::default()
        };
        let e = evaluate(&[opened("a", FRAUD, 1, 70 * DAY)], &one_label(), &known);
        assert_eq!((e.true_alerts, e.unknown_alerts), (0, 1), "rule-1 is not a known rule");
    }

    #[test]
    fn no_alerts_give_zero_recall_and_undefined_precision() {
        let e = run(&[], &one_label());
        assert_eq!(e.provider_recall, Some(0.0));
        assert_eq!(e.label_recall, Some(0.0));
        assert_eq!((e.alert_precision, e.alert_precision_strict, e.provider_precision), (None, None, None));
        assert_eq!(e.false_alerts_per_100_clean_provider_months, Some(0.0));
        let json = serde_json::to_value(&e).expect("serializes");
        assert_eq!(json["alertPrecision"], serde_json::Value::Null);
        assert_eq!(json["delay"]["medianHours"], serde_json::Value::Null);
        assert!(!serde_json::to_string(&e).expect("serializes").contains("NaN"));
        assert!(e.to_string().contains("| alert precision, strict / lenient | n/a / n/a |"), "{e}");
    }

    #[test]
    fn display_shows_the_three_tables() {
        let e = run(&[opened("a", FRAUD, 1, 70 * DAY), opened("b", CLEAN, 1, 70 * DAY)], &one_label());
        let text = e.to_string();
        assert!(text.contains("| providers (fraudulent) | 2 (1) |"), "{text}");
        assert!(text.contains("| alert precision, strict / lenient | 0.500 / 0.500 |"), "{text}");
        assert!(text.contains("| 1 | pattern 1 | 1 | 1 | 1.000 | 192.0 | 192.0 |"), "{text}");
        assert!(text.contains("| rule-1 | 1 | 2 | 1 | 1 |"), "{text}");
    }

    #[test]
    fn files_are_read_and_bad_input_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let truth_path = dir.path().join("truth.json");
        one_label().write(&truth_path).expect("write truth");
        let alerts_path = dir.path().join("alerts.ndjson");
        let mut writer = tillsyn_core::codec::MessageWriter::create(&alerts_path).expect("create alerts");
        writer.write(&opened("a", FRAUD, 1, 70 * DAY)).expect("write alert");
        writer.finish().expect("flush");
        let e = evaluate_files(&alerts_path, &truth_path, &EvaluationOptions::default()).expect("evaluates");
        assert_eq!((e.alerts.opened, e.true_alerts), (1, 1));

        std::fs::write(&alerts_path, "{\"alertId\":\"a\"}\nnot json\n").expect("write");
        let error = evaluate_files(&alerts_path, &truth_path, &EvaluationOptions::default()).unwrap_err();
        assert!(format!("{error:#}").contains("line 2"), "{error:#}");
        let missing = dir.path().join("missing.json");
        assert!(evaluate_files(&alerts_path, &missing, &EvaluationOptions::default()).is_err());
    }
}
