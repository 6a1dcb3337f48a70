//! The view's HTML, rendered on the server with maud from plain rows:
//! the list of open episodes with its filter form, an episode's page, and
//! the pages for an unknown episode and an unreachable store. Every page
//! works without JavaScript; `/assets/case-view.js` only re-reads the part
//! in `#live-content` when the store changes and says so in the
//! `#live-status` live region.
//!
//! Accessibility: `lang` on `<html>` (and on an explanation in another
//! language), a skip link, landmarks (`header`, `nav`, `main`, `footer`),
//! headings in order, tables with captions and `th scope`, a label on every
//! control, severities in words (colour only repeats them), visible focus
//! (`/assets/case-view.css`; its colours are checked for WCAG AA contrast
//! in the tests below).

use std::time::SystemTime;

use maud::{DOCTYPE, Markup, html};

use super::store::{AlertEntry, Choices, Episode, EpisodeSummary, Filter, Measure, OpenEpisodes};
use super::text::{self, Lang};
use tillsyn_core::model::EventTime;

/// `s` percent-encoded for a URL's path segment or query value (every
/// byte but the unreserved ones).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    if query.is_empty() { path.to_string() } else { format!("{path}?{}", query.join("&")) }
}

/// The list's address with `filter`, in `lang`.
pub fn list_href(lang: Lang, filter: &Filter) -> String {
    let mut pairs = Vec::new();
    if let Some(m) = &filter.municipality {
        pairs.push(("municipality", m.as_str()));
    }
    if let Some(r) = &filter.rule {
        pairs.push(("rule", r.as_str()));
    }
    pairs.extend(lang.query_pair());
    with_query("/", &pairs)
}

/// An episode's address, in `lang`.
pub fn episode_href(lang: Lang, id: &str) -> String {
    with_query(&format!("/episodes/{}", encode(id)), lang.query_pair().as_slice())
}

/// A `<time>` element: Swedish local time, the instant in UTC for machines.
fn time(t: SystemTime) -> Markup {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    html! { time datetime=(EventTime(secs).to_string()) { (text::datetime(t)) } }
}

fn measure(lang: Lang, m: Option<&Measure>) -> Markup {
    match m {
        Some(m) => html! { (text::measure(lang, m.value, &m.unit)) },
        None => html! { "–" },
    }
}

/// The severity in words, on a badge of its colour.
fn severity_badge(lang: Lang, severity: &str) -> Markup {
    let class = match severity {
        "critical" | "high" | "medium" | "low" => severity,
        _ => "unknown",
    };
    html! { span class={ "badge sev-" (class) } { (text::severity(lang, severity)) } }
}

/// The page around `content`: head, skip link, header with the language
/// switch (to `switch_href`), main, footer.
fn layout(lang: Lang, title: &str, switch_href: &str, content: Markup) -> Markup {
    let t = lang.t();
    let other = lang.other();
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – tillsyn" }
                link rel="stylesheet" href="/assets/case-view.css";
                script src="/assets/case-view.js" defer {}
            }
            body {
                a.skip-link href="#main" { (t.skip_link) }
                header.site-header {
                    p.brand {
                        a href=(list_href(lang, &Filter::default())) { "tillsyn" }
                        " "
                        span.subtitle { (t.site_subtitle) }
                    }
                    nav.language aria-label=(t.language_nav) {
                        a href=(switch_href) lang=(other.code()) hreflang=(other.code()) { (other.own_name()) }
                    }
                }
                main #main tabindex="-1" { (content) }
                footer.site-footer {
                    p { (t.live_hint) " " (t.times_note) }
                }
            }
        }
    }
}

/// The live region the page's script announces updates in.
fn live_status(lang: Lang) -> Markup {
    let t = lang.t();
    html! {
        p #live-status .live-status role="status" aria-live="polite"
            data-one=(t.live_one) data-many=(t.live_many) data-plain=(t.live_plain) {}
    }
}

fn count_caption(lang: Lang, shown: usize, total: i64) -> String {
    let total = total.max(shown as i64);
    let n = text::number(lang, total as f64, 0);
    let all = match (lang, total) {
        (Lang::Sv, 1) => "1 öppet ärende".to_string(),
        (Lang::Sv, _) => format!("{n} öppna ärenden"),
        (Lang::En, 1) => "1 open case".to_string(),
        (Lang::En, _) => format!("{n} open cases"),
    };
    if (shown as i64) < total {
        let shown = text::number(lang, shown as f64, 0);
        match lang {
            Lang::Sv => format!("{all}, de {shown} första visas"),
            Lang::En => format!("{all}, the first {shown} shown"),
        }
    } else {
        all
    }
}

/// `/`: the open episodes matching `filter`, with the filter form.
pub fn list_page(lang: Lang, filter: &Filter, choices: &Choices, open: &OpenEpisodes) -> Markup {
    let t = lang.t();
    // A chosen value stays a choice even when it has no open episode.
    let mut municipalities = choices.municipalities.clone();
    municipalities.extend(filter.municipality.clone());
    municipalities.sort();
    municipalities.dedup();
    let mut rules: Vec<(String, String)> =
        choices.rules.iter().map(|r| (text::rule_name(lang, r), r.clone())).collect();
    if let Some(r) = &filter.rule
        && !choices.rules.contains(r)
    {
        rules.push((text::rule_name(lang, r), r.clone()));
    }
    rules.sort();
    let content = html! {
        h1 { (t.list_title) }
        p.intro { (t.list_intro) }
        form.filters method="get" action="/" role="search" aria-label=(t.filter_legend) {
            fieldset {
                legend { (t.filter_legend) }
                div.field {
                    label for="municipality" { (t.municipality) }
                    select #municipality name="municipality" {
                        option value="" selected[filter.municipality.is_none()] { (t.all_municipalities) }
                        @for m in &municipalities {
                            option value=(m) selected[filter.municipality.as_ref() == Some(m)] { (m) }
                        }
                    }
                }
                div.field {
                    label for="rule" { (t.rule) }
                    select #rule name="rule" {
                        option value="" selected[filter.rule.is_none()] { (t.all_rules) }
                        @for (name, id) in &rules {
                            option value=(id) selected[filter.rule.as_ref() == Some(id)] { (name) }
                        }
                    }
                }
                @if let Some((k, v)) = lang.query_pair() {
                    input type="hidden" name=(k) value=(v);
                }
                div.actions {
                    button type="submit" { (t.apply_filter) }
                    @if *filter != Filter::default() {
                        a.clear href=(list_href(lang, &Filter::default())) { (t.clear_filter) }
                    }
                }
            }
        }
        (live_status(lang))
        div #live-content {
            @if open.episodes.is_empty() {
                p.empty { (t.no_open_episodes) }
            } @else {
                (episode_table(lang, open))
            }
        }
    };
    layout(lang, t.list_title, &list_href(lang.other(), filter), content)
}

fn episode_table(lang: Lang, open: &OpenEpisodes) -> Markup {
    let t = lang.t();
    html! {
        // Focusable, so that a keyboard can scroll it on a narrow screen.
        div.table-scroll role="region" tabindex="0" aria-labelledby="episodes-caption" {
            table #episodes .episodes {
                caption #episodes-caption { (count_caption(lang, open.episodes.len(), open.total)) }
                thead {
                    tr {
                        th scope="col" { (t.severity) }
                        th scope="col" { (t.rule) }
                        th scope="col" { (t.provider) }
                        th scope="col" { (t.municipality) }
                        th scope="col" { (t.status) }
                        th scope="col" { (t.first_detected) }
                        th scope="col" { (t.last_detected) }
                        th scope="col" .num { (t.alerts) }
                        th scope="col" .num { (t.observed) }
                        th scope="col" .num { (t.expected) }
                    }
                }
                tbody {
                    @for e in &open.episodes {
                        (episode_row(lang, e))
                    }
                }
            }
        }
    }
}

fn episode_row(lang: Lang, e: &EpisodeSummary) -> Markup {
    html! {
        tr data-episode=(e.episode_id) {
            td { (severity_badge(lang, &e.severity)) }
            th scope="row" {
                a href=(episode_href(lang, &e.episode_id)) {
                    (text::rule_name(lang, &e.rule_id))
                    span.visually-hidden { ", " (lang.t().provider.to_lowercase()) " " (e.provider_id) }
                }
            }
            td.nowrap { (e.provider_id) }
            td { (e.municipality_code) }
            td { (text::status(lang, &e.status)) }
            td { (time(e.first_detected_at)) }
            td { (time(e.last_detected_at)) }
            td.num { (text::number(lang, f64::from(e.alert_count), 0)) }
            td.num { (measure(lang, e.observed.as_ref())) }
            td.num { (measure(lang, e.expected.as_ref())) }
        }
    }
}

/// `/episodes/{id}`: one episode, its explanation, its values, its alerts
/// and its evidence.
pub fn episode_page(lang: Lang, episode: &Episode, history: &[AlertEntry]) -> Markup {
    let t = lang.t();
    let e = &episode.summary;
    let rule = text::rule_name(lang, &e.rule_id);
    let (explanation, explanation_lang) = text::pick_explanation(lang, &episode.explanation, &episode.explanations);
    let in_other_language = explanation_lang.is_some_and(|l| l != lang.code());
    let difference = match (&e.observed, &e.expected) {
        (Some(o), Some(x)) if o.unit == x.unit => Some(Measure { value: o.value - x.value, unit: o.unit.clone() }),
        _ => None,
    };
    let content = html! {
        nav.breadcrumb aria-label=(t.back_to_list) {
            a href=(list_href(lang, &Filter::default())) { "← " (t.back_to_list) }
        }
        h1 { (rule) }
        p.lead {
            (t.at_provider) " " strong { (e.provider_id) } ", " (t.in_municipality) " " strong { (e.municipality_code) }
        }
        (live_status(lang))
        div #live-content {
            section aria-labelledby="summary-heading" {
                h2 #summary-heading { (t.summary) }
                dl.facts {
                    div { dt { (t.status) } dd #episode-status { (text::status(lang, &e.status)) } }
                    div { dt { (t.severity) } dd { (severity_badge(lang, &e.severity)) } }
                    div { dt { (t.rule) } dd { (rule) " (" code { (e.rule_id) } ")" } }
                    div { dt { (t.pattern) } dd { (episode.pattern) } }
                    div { dt { (t.provider) } dd { (e.provider_id) } }
                    div { dt { (t.municipality) } dd { (e.municipality_code) } }
                    div {
                        dt { (t.window) }
                        dd {
                            @match (episode.window_start, episode.window_end) {
                                (Some(s), Some(end)) => { (time(s)) " – " (time(end)) }
                                _ => { "–" }
                            }
                        }
                    }
                    div { dt { (t.first_detected) } dd { (time(e.first_detected_at)) } }
                    div { dt { (t.last_detected) } dd { (time(e.last_detected_at)) } }
                    div { dt { (t.alerts) } dd { (text::number(lang, f64::from(e.alert_count), 0)) } }
                    div { dt { (t.score) } dd { (text::number(lang, episode.score, 2)) } }
                    div { dt { (t.episode_id) } dd { code { (e.episode_id) } } }
                }
            }
            section aria-labelledby="explanation-heading" {
                h2 #explanation-heading { (t.explanation) }
                @if in_other_language {
                    p.explanation lang=[explanation_lang] { (explanation) }
                    p.note { (t.explanation_other_language) }
                } @else {
                    p.explanation { (explanation) }
                }
            }
            section aria-labelledby="values-heading" {
                h2 #values-heading { (t.values) }
                table.values {
                    tbody {
                        tr { th scope="row" { (t.observed) } td #observed { (measure(lang, e.observed.as_ref())) } }
                        tr { th scope="row" { (t.expected) } td #expected { (measure(lang, e.expected.as_ref())) } }
                        @if let Some(d) = &difference {
                            tr { th scope="row" { (t.difference) } td { (measure(lang, Some(d))) } }
                        }
                    }
                }
                p.note { (t.values_note) }
            }
            section aria-labelledby="history-heading" {
                h2 #history-heading { (t.history) }
                div.table-scroll role="region" tabindex="0" aria-labelledby="history-caption" {
                    table #history .history {
                        caption #history-caption { (history_caption(lang, history.len())) }
                        thead {
                            tr {
                                th scope="col" .num { (t.revision) }
                                th scope="col" { (t.status) }
                                th scope="col" { (t.severity) }
                                th scope="col" { (t.detected) }
                                th scope="col" .num { (t.observed) }
                                th scope="col" .num { (t.expected) }
                                th scope="col" .num { (t.score) }
                                th scope="col" .num { (t.configuration_version) }
                                th scope="col" .num { (t.rule_version) }
                                th scope="col" { (t.alert_id) }
                            }
                        }
                        tbody {
                            @for a in history {
                                tr {
                                    th scope="row" .num { (a.revision) }
                                    td { (text::status(lang, &a.status)) }
                                    td { (severity_badge(lang, &a.severity)) }
                                    td { (time(a.detected_at)) }
                                    td.num { (measure(lang, a.observed.as_ref())) }
                                    td.num { (measure(lang, a.expected.as_ref())) }
                                    td.num { (text::number(lang, a.score, 2)) }
                                    td.num { (a.configuration_version) }
                                    td.num { (a.rule_version) }
                                    td { code { (a.alert_id) } }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="evidence-heading" {
                h2 #evidence-heading { (t.evidence) }
                @if episode.evidence_event_ids.is_empty() {
                    p { (t.no_evidence) }
                } @else {
                    p { (t.evidence_intro) }
                    ul #evidence .evidence {
                        @for id in &episode.evidence_event_ids {
                            li { code { (id) } }
                        }
                    }
                }
            }
        }
    };
    layout(lang, &rule, &episode_href(lang.other(), &e.episode_id), content)
}

fn history_caption(lang: Lang, n: usize) -> String {
    match (lang, n) {
        (Lang::Sv, 1) => "1 larm, efter revision".into(),
        (Lang::Sv, n) => format!("{n} larm, efter revision"),
        (Lang::En, 1) => "1 alert, by revision".into(),
        (Lang::En, n) => format!("{n} alerts, by revision"),
    }
}

/// A page that only says something: an unknown episode, an unreachable
/// store. `switch_href` is this page's address in the other language.
pub fn message_page(lang: Lang, title: &str, message: &str, switch_href: &str) -> Markup {
    let t = lang.t();
    let content = html! {
        h1 { (title) }
        p { (message) }
        p { a href=(list_href(lang, &Filter::default())) { (t.back_to_list) } }
    };
    layout(lang, title, switch_href, content)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::store::tests::summary;
    use super::*;

    fn open(episodes: Vec<EpisodeSummary>) -> OpenEpisodes {
        let total = episodes.len() as i64;
        OpenEpisodes { episodes, total }
    }

    fn choices() -> Choices {
        Choices {
            municipalities: vec!["0180".into(), "2480".into()],
            rules: vec!["invoiced-above-performed".into(), "phantom-clients".into()],
        }
    }

    /// The text of `html` between the first `from` and the next `to`.
    fn between<'a>(html: &'a str, from: &str, to: &str) -> &'a str {
        let start = html.find(from).unwrap_or_else(|| panic!("no {from:?} in {html}")) + from.len();
        let end = html[start..].find(to).unwrap_or_else(|| panic!("no {to:?} after {from:?}")) + start;
        &html[start..end]
    }

    #[test]
    fn the_list_is_swedish_by_default_with_labels_and_a_table_with_headers() {
        let mut critical = summary("ep-1", 4, 31);
        critical.status = "escalated".into();
        let page = list_page(Lang::Sv, &Filter::default(), &choices(), &open(vec![critical, summary("ep-2", 2, 3)]))
            .into_string();
        assert!(page.starts_with("<!DOCTYPE html><html lang=\"sv\">"), "{page}");
        for needle in [
            "<label for=\"municipality\">Kommun</label>",
            "<select id=\"municipality\" name=\"municipality\">",
            "<label for=\"rule\">Regel</label>",
            "<option value=\"\" selected>Alla kommuner</option>",
            "<th scope=\"col\">Allvarlighets\u{ad}grad</th>",
            "<th scope=\"col\">Utförare</th>",
            "<caption id=\"episodes-caption\">2 öppna ärenden</caption>",
            "<span class=\"badge sev-critical\">Kritisk</span>",
            "<td>Eskalerad</td>",
            "Fakturerade timmar över utförda timmar",
            "412,5\u{a0}timmar",
            "<time datetime=\"2026-02-01T09:00:00Z\">2026-02-01 10:00</time>",
            "href=\"/episodes/ep-1\"",
            "href=\"/?lang=en\" lang=\"en\" hreflang=\"en\">English</a>",
            "role=\"status\" aria-live=\"polite\"",
            "<main id=\"main\" tabindex=\"-1\">",
        ] {
            assert!(page.contains(needle), "no {needle:?} in\n{page}");
        }
        // Rows in the order given (the store's), the critical one first.
        assert!(page.find("ep-1").unwrap() < page.find("ep-2").unwrap());
        // Headings in order: one h1, no h2 before it.
        assert_eq!(page.matches("<h1>").count(), 1);
        assert!(!page.contains("<h3"), "no heading level skipped");
        assert!(!page.contains("Rensa filter"), "nothing to clear");
    }

    #[test]
    fn the_list_in_english_keeps_the_filters_across_the_language_switch() {
        let filter = Filter::new(Some("2480"), Some("phantom-clients"));
        let page = list_page(Lang::En, &filter, &choices(), &open(vec![])).into_string();
        assert!(page.starts_with("<!DOCTYPE html><html lang=\"en\">"));
        assert!(page.contains("No open cases match the filters."), "{page}");
        assert!(page.contains("<option value=\"2480\" selected>2480</option>"), "{page}");
        assert!(page.contains("<option value=\"phantom-clients\" selected>Invoiced clients without visits</option>"));
        assert!(page.contains("<input type=\"hidden\" name=\"lang\" value=\"en\">"), "the form keeps the language");
        assert!(page.contains("href=\"/?municipality=2480&amp;rule=phantom-clients\" lang=\"sv\""), "{page}");
        assert!(page.contains(">Clear filters</a>"));
        assert!(!page.contains("<table"), "no empty table");
    }

    #[test]
    fn a_chosen_value_without_open_episodes_stays_selectable() {
        let filter = Filter::new(Some("1480"), Some("a-newer-rule"));
        let page = list_page(Lang::Sv, &filter, &choices(), &open(vec![])).into_string();
        assert!(page.contains("<option value=\"1480\" selected>1480</option>"), "{page}");
        assert!(page.contains("<option value=\"a-newer-rule\" selected>a-newer-rule</option>"), "{page}");
    }

    #[test]
    fn a_long_list_says_how_many_are_shown() {
        let mut list = open(vec![summary("a", 3, 1), summary("b", 3, 2)]);
        list.total = 1_250;
        let page = list_page(Lang::Sv, &Filter::default(), &choices(), &list).into_string();
        assert!(page.contains("1\u{a0}250 öppna ärenden, de 2 första visas</caption>"), "{page}");
        list.total = 1;
        list.episodes.truncate(1);
        let page = list_page(Lang::En, &Filter::default(), &choices(), &list).into_string();
        assert!(page.contains(">1 open case</caption>"), "{page}");
    }

    fn episode() -> (Episode, Vec<AlertEntry>) {
        let mut s = summary("ep/1 ä", 4, 31);
        s.status = "escalated".into();
        s.alert_count = 2;
        let at = |h: u64| UNIX_EPOCH + Duration::from_secs(1_769_936_400 + h * 3_600);
        let entry = |revision: i32, status: &str, severity: &str| AlertEntry {
            alert_id: format!("alert-{revision}"),
            revision,
            status: status.into(),
            severity: severity.into(),
            detected_at: at(revision as u64),
            configuration_version: 2,
            rule_version: 1,
            score: 1.5 + f64::from(revision),
            observed: Some(Measure { value: 400.0 + f64::from(revision) * 12.5, unit: "hours".into() }),
            expected: Some(Measure { value: 320.0, unit: "hours".into() }),
        };
        let episode = Episode {
            summary: s,
            pattern: 1,
            score: 2.5,
            window_start: Some(at(0)),
            window_end: Some(at(24)),
            explanation: "Invoiced 412.5 hours against 320 performed.".into(),
            explanations: serde_json::json!({}),
            evidence_event_ids: vec!["inv-2026-02-0001".into(), "tr-<b>".into()],
        };
        (episode, vec![entry(0, "opened", "high"), entry(1, "escalated", "critical")])
    }

    #[test]
    fn the_episode_page_shows_values_history_and_evidence() {
        let (episode, history) = episode();
        let page = episode_page(Lang::Sv, &episode, &history).into_string();
        for needle in [
            "<html lang=\"sv\">",
            "<h1>Fakturerade timmar över utförda timmar</h1>",
            "<h2 id=\"summary-heading\">Sammanfattning</h2>",
            "<dd id=\"episode-status\">Eskalerad</dd>",
            "<th scope=\"row\">Observerat</th><td id=\"observed\">412,5\u{a0}timmar</td>",
            "<th scope=\"row\">Förväntat</th><td id=\"expected\">320\u{a0}timmar</td>",
            "<th scope=\"row\">Skillnad</th><td>92,5\u{a0}timmar</td>",
            "<h2 id=\"history-heading\">Larmhistorik</h2>",
            "<caption id=\"history-caption\">2 larm, efter revision</caption>",
            "<th class=\"num\" scope=\"col\">Konfigurations\u{ad}version</th>",
            "<td>Öppnad</td>",
            "<code>alert-1</code>",
            "<h2 id=\"evidence-heading\">Underlag (bevis-id)</h2>",
            "<li><code>inv-2026-02-0001</code></li>",
            "<li><code>tr-&lt;b&gt;</code></li>",
            "Invoiced 412.5 hours against 320 performed.",
            // The id is encoded in the address of the other language.
            "href=\"/episodes/ep%2F1%20%C3%A4?lang=en\"",
        ] {
            assert!(page.contains(needle), "no {needle:?} in\n{page}");
        }
        assert!(
            between(&page, ">2 larm", "</tbody>").find("alert-0")
                < between(&page, ">2 larm", "</tbody>").find("alert-1"),
            "by revision"
        );
        assert!(!page.contains("Förklaringen finns inte på svenska"), "the language is unknown: no note");
        let headings: Vec<&str> = [
            "<h1>",
            "<h2 id=\"summary",
            "<h2 id=\"explanation",
            "<h2 id=\"values",
            "<h2 id=\"history",
            "<h2 id=\"evidence",
        ]
        .into_iter()
        .collect();
        let positions: Vec<usize> = headings.iter().map(|h| page.find(h).unwrap()).collect();
        assert!(positions.is_sorted(), "headings in order: {positions:?}");
    }

    #[test]
    fn the_episode_page_shows_the_explanation_in_the_readers_language() {
        let (mut episode, history) = episode();
        episode.explanations = serde_json::json!({
            "sv": "Utföraren fakturerade 412,5 timmar.",
            "en": "Invoiced 412.5 hours against 320 performed."
        });
        let sv = episode_page(Lang::Sv, &episode, &history).into_string();
        assert!(sv.contains("<p class=\"explanation\">Utföraren fakturerade 412,5 timmar.</p>"), "{sv}");
        let en = episode_page(Lang::En, &episode, &history).into_string();
        assert!(en.contains("<p class=\"explanation\">Invoiced 412.5 hours against 320 performed.</p>"));
        assert!(en.contains("412.5\u{a0}hours") && en.contains("Alert history") && en.contains("Evidence (event ids)"));
        // Only English in the alert: marked as English on the Swedish page.
        episode.explanations = serde_json::json!({"en": "Invoiced 412.5 hours against 320 performed."});
        let sv = episode_page(Lang::Sv, &episode, &history).into_string();
        assert!(sv.contains("<p class=\"explanation\" lang=\"en\">Invoiced 412.5 hours"), "{sv}");
        assert!(sv.contains("Förklaringen finns inte på svenska"));
    }

    #[test]
    fn addresses_are_encoded() {
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode("a b/c?d&e=ö"), "a%20b%2Fc%3Fd%26e%3D%C3%B6");
        assert_eq!(list_href(Lang::Sv, &Filter::default()), "/");
        assert_eq!(list_href(Lang::En, &Filter::new(Some("2480"), None)), "/?municipality=2480&lang=en");
        assert_eq!(episode_href(Lang::Sv, "abc123"), "/episodes/abc123");
    }

    #[test]
    fn the_message_page_is_a_whole_page_in_its_language() {
        let page = message_page(Lang::En, "No such case", "The case store has no case with that id.", "/episodes/x")
            .into_string();
        assert!(page.contains("<html lang=\"en\">") && page.contains("<h1>No such case</h1>"), "{page}");
        assert!(page.contains("href=\"/episodes/x\" lang=\"sv\""), "{page}");
    }

    /// WCAG 2 contrast ratio of two `#rrggbb` colours.
    fn contrast(a: &str, b: &str) -> f64 {
        let luminance = |hex: &str| {
            let channel = |i: usize| {
                let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
                if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
            };
            0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
        };
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn the_stylesheets_colours_meet_wcag_aa_contrast() {
        let css = include_str!("assets/case-view.css");
        // (text, background, what): every pair the stylesheet draws text
        // with; 4.5:1 for text, 3:1 for the focus ring against the page.
        let text_pairs = [
            ("#1b1f24", "#ffffff", "body text"),
            ("#4a5360", "#ffffff", "secondary text"),
            ("#0b57a4", "#ffffff", "links"),
            ("#1b1f24", "#eef2f6", "table headers and header band"),
            ("#0b57a4", "#eef2f6", "links in the header band"),
            ("#ffffff", "#8a1c1c", "critical badge"),
            ("#ffffff", "#a3440b", "high badge"),
            ("#3d2c00", "#fbe08a", "medium badge"),
            ("#1b1f24", "#dfe4ea", "low badge"),
            ("#ffffff", "#0b57a4", "the button"),
            ("#1b1f24", "#fff4c2", "the live region"),
        ];
        for (fg, bg, what) in text_pairs {
            let ratio = contrast(fg, bg);
            assert!(ratio >= 4.5, "{what}: {fg} on {bg} is {ratio:.2}:1, below 4.5:1");
            for c in [fg, bg] {
                assert!(css.contains(c), "{what}: {c} is not in the stylesheet (the pairs above are out of date)");
            }
        }
        for bg in ["#ffffff", "#eef2f6"] {
            let ratio = contrast("#c2410c", bg);
            assert!(ratio >= 3.0, "focus ring on {bg}: {ratio:.2}:1");
        }
        assert!(css.contains(":focus-visible") && css.contains("#c2410c"), "a visible focus ring");
        assert!(contrast("#000000", "#ffffff") > 20.9, "the formula");
    }
}
