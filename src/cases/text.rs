//! The view's words and formats, in Swedish (the default) and English:
//! the language of a request, the interface texts, the names of statuses,
//! severities, rules and units, numbers (decimal comma and a no-break space
//! between thousands in Swedish) and times (`YYYY-MM-DD HH:MM`, Swedish
//! local time, CET/CEST, as the core counts days). The Swedish number
//! format is the one of the alerts' explanations (`tillsyn_core::text`).

use std::time::{SystemTime, UNIX_EPOCH};

use tillsyn_core::model::EventTime;

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Swedish, the default.
    Sv,
    /// English, with `lang=en`.
    En,
}

impl Lang {
    /// The language a request asks for with its `lang` parameter: English
    /// for `en` (any case), Swedish otherwise. The browser's
    /// `Accept-Language` is not consulted: the view is Swedish unless the
    /// reader chooses English on the page.
    pub fn from_param(param: Option<&str>) -> Lang {
        match param.map(str::trim) {
            Some(p) if p.eq_ignore_ascii_case("en") => Lang::En,
            _ => Lang::Sv,
        }
    }

    /// The BCP 47 code (`lang` attributes, the `lang` parameter).
    pub fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    /// The other language (the language switch).
    pub fn other(self) -> Lang {
        match self {
            Lang::Sv => Lang::En,
            Lang::En => Lang::Sv,
        }
    }

    /// The language's name in itself, for the switch.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::Sv => "Svenska",
            Lang::En => "English",
        }
    }

    /// The `lang` query pair of a link in this language: none for
    /// Swedish, the default.
    pub fn query_pair(self) -> Option<(&'static str, &'static str)> {
        match self {
            Lang::Sv => None,
            Lang::En => Some(("lang", "en")),
        }
    }

    /// The interface texts.
    pub fn t(self) -> &'static Texts {
        match self {
            Lang::Sv => &SV,
            Lang::En => &EN,
        }
    }
}

/// Every fixed text of the interface, one set per language.
#[derive(Debug)]
pub struct Texts {
    pub site_subtitle: &'static str,
    pub skip_link: &'static str,
    pub language_nav: &'static str,
    pub list_title: &'static str,
    pub list_intro: &'static str,
    pub filter_legend: &'static str,
    pub municipality: &'static str,
    pub all_municipalities: &'static str,
    pub rule: &'static str,
    pub all_rules: &'static str,
    pub apply_filter: &'static str,
    pub clear_filter: &'static str,
    pub severity: &'static str,
    pub status: &'static str,
    pub provider: &'static str,
    pub first_detected: &'static str,
    pub last_detected: &'static str,
    pub alerts: &'static str,
    pub observed: &'static str,
    pub expected: &'static str,
    pub no_open_episodes: &'static str,
    pub live_hint: &'static str,
    pub times_note: &'static str,
    /// The live region's messages (`{time}`, `{n}` filled in by the page).
    pub live_one: &'static str,
    pub live_many: &'static str,
    pub live_plain: &'static str,
    pub back_to_list: &'static str,
    pub summary: &'static str,
    pub episode_id: &'static str,
    pub pattern: &'static str,
    pub window: &'static str,
    pub score: &'static str,
    pub explanation: &'static str,
    pub explanation_other_language: &'static str,
    pub values: &'static str,
    pub values_note: &'static str,
    pub difference: &'static str,
    pub history: &'static str,
    pub revision: &'static str,
    pub detected: &'static str,
    pub configuration_version: &'static str,
    pub rule_version: &'static str,
    pub alert_id: &'static str,
    pub evidence: &'static str,
    pub evidence_intro: &'static str,
    pub no_evidence: &'static str,
    pub not_found_title: &'static str,
    pub not_found: &'static str,
    pub unavailable_title: &'static str,
    pub unavailable: &'static str,
    pub at_provider: &'static str,
    pub in_municipality: &'static str,
}

static SV: Texts = Texts {
    site_subtitle: "Ärenden från ärendeförrådet",
    skip_link: "Hoppa till innehållet",
    language_nav: "Språk",
    list_title: "Öppna ärenden",
    list_intro: "Episoder som är öppnade eller eskalerade, de allvarligaste först och inom samma \
                 allvarlighetsgrad de äldsta först.",
    filter_legend: "Filtrera ärenden",
    municipality: "Kommun",
    all_municipalities: "Alla kommuner",
    rule: "Regel",
    all_rules: "Alla regler",
    apply_filter: "Visa",
    clear_filter: "Rensa filter",
    severity: "Allvarlighets\u{ad}grad",
    status: "Status",
    provider: "Utförare",
    first_detected: "Öppnad",
    last_detected: "Senast upptäckt",
    alerts: "Larm",
    observed: "Observerat",
    expected: "Förväntat",
    no_open_episodes: "Inga öppna ärenden motsvarar urvalet.",
    live_hint: "Sidan uppdateras av sig själv när nya larm lagras.",
    times_note: "Tider anges i svensk tid.",
    live_one: "Uppdaterad {time}: 1 nytt larm har lagrats.",
    live_many: "Uppdaterad {time}: {n} nya larm har lagrats.",
    live_plain: "Uppdaterad {time}.",
    back_to_list: "Alla öppna ärenden",
    summary: "Sammanfattning",
    episode_id: "Episod-id",
    pattern: "Mönster",
    window: "Period",
    score: "Poäng",
    explanation: "Förklaring",
    explanation_other_language: "Förklaringen finns inte på svenska; den visas på larmets språk.",
    values: "Observerat och förväntat",
    values_note: "Förväntat är gränsvärdet eller jämförelsevärdet som regeln använde.",
    difference: "Skillnad",
    history: "Larmhistorik",
    revision: "Revision",
    detected: "Upptäckt",
    // Soft hyphens: the history's headers may break there.
    configuration_version: "Konfigurations\u{ad}version",
    rule_version: "Regel\u{ad}version",
    alert_id: "Larm-id",
    evidence: "Underlag (bevis-id)",
    evidence_intro: "Händelse-id för de tidrapporter och fakturor som det senaste larmet bygger på.",
    no_evidence: "Larmet anger inga bevis-id.",
    not_found_title: "Ärendet finns inte",
    not_found: "Det finns inget ärende med det id:t i ärendeförrådet.",
    unavailable_title: "Ärendeförrådet kan inte nås",
    unavailable: "Ärendeförrådet kan inte nås just nu. Försök igen om en stund.",
    at_provider: "hos utförare",
    in_municipality: "kommun",
};

static EN: Texts = Texts {
    site_subtitle: "Cases from the case store",
    skip_link: "Skip to content",
    language_nav: "Language",
    list_title: "Open cases",
    list_intro: "Episodes that are opened or escalated, the most severe first and, within a severity, the \
                 oldest first.",
    filter_legend: "Filter cases",
    municipality: "Municipality",
    all_municipalities: "All municipalities",
    rule: "Rule",
    all_rules: "All rules",
    apply_filter: "Show",
    clear_filter: "Clear filters",
    severity: "Severity",
    status: "Status",
    provider: "Provider",
    first_detected: "Opened",
    last_detected: "Last detected",
    alerts: "Alerts",
    observed: "Observed",
    expected: "Expected",
    no_open_episodes: "No open cases match the filters.",
    live_hint: "This page updates itself when new alerts are stored.",
    times_note: "Times are Swedish time.",
    live_one: "Updated {time}: 1 new alert stored.",
    live_many: "Updated {time}: {n} new alerts stored.",
    live_plain: "Updated {time}.",
    back_to_list: "All open cases",
    summary: "Summary",
    episode_id: "Episode id",
    pattern: "Pattern",
    window: "Window",
    score: "Score",
    explanation: "Explanation",
    explanation_other_language: "The explanation is not available in English; it is shown in the alert's \
                                 language.",
    values: "Observed and expected",
    values_note: "Expected is the limit or baseline the rule used.",
    difference: "Difference",
    history: "Alert history",
    revision: "Revision",
    detected: "Detected",
    configuration_version: "Configuration version",
    rule_version: "Rule version",
    alert_id: "Alert id",
    evidence: "Evidence (event ids)",
    evidence_intro: "The ids of the time reports and invoices the latest alert is based on.",
    no_evidence: "The alert names no evidence.",
    not_found_title: "No such case",
    not_found: "The case store has no case with that id.",
    unavailable_title: "The case store is unavailable",
    unavailable: "The case store cannot be reached right now. Try again in a moment.",
    at_provider: "at provider",
    in_municipality: "municipality",
};

/// An episode's or alert's status (`opened`, `escalated`, `resolved`).
pub fn status(lang: Lang, status: &str) -> String {
    let name = match (lang, status) {
        (Lang::Sv, "opened") => "Öppnad",
        (Lang::Sv, "escalated") => "Eskalerad",
        (Lang::Sv, "resolved") => "Avslutad",
        (Lang::En, "opened") => "Opened",
        (Lang::En, "escalated") => "Escalated",
        (Lang::En, "resolved") => "Resolved",
        _ => return status.to_string(),
    };
    name.to_string()
}

/// A severity (`low`, `medium`, `high`, `critical`).
pub fn severity(lang: Lang, severity: &str) -> String {
    let name = match (lang, severity) {
        (Lang::Sv, "critical") => "Kritisk",
        (Lang::Sv, "high") => "Hög",
        (Lang::Sv, "medium") => "Medel",
        (Lang::Sv, "low") => "Låg",
        (Lang::En, "critical") => "Critical",
        (Lang::En, "high") => "High",
        (Lang::En, "medium") => "Medium",
        (Lang::En, "low") => "Low",
        _ => return severity.to_string(),
    };
    name.to_string()
}

/// The Swedish names of the rules of the catalogue (the English ones are
/// the catalogue's own).
const RULES_SV: &[(&str, &str)] = &[
    ("above-granted-hours", "Timmar över beviljade timmar"),
    ("granted-hours-utilisation", "Andel utförd beviljad tid långt över jämförbara utförare"),
    ("client-hours-above-granted", "Timmar över beviljade timmar, över brukarens alla utförare"),
    ("billing-during-absence", "Fakturering under frånvaro"),
    ("check-in-away-from-home", "Incheckning långt från brukarens hem"),
    ("duplicate-billing", "Dubbelfakturering"),
    ("hours-per-client-above-peers", "Timmar per brukare långt över jämförbara utförare"),
    ("hours-per-client-rise", "Timmar per brukare ökar över utförarens egen historik"),
    ("impossible-travel", "Omöjlig förflyttning mellan besök"),
    ("invoiced-above-performed", "Fakturerade timmar över utförda timmar"),
    ("manual-registration-share", "Manuella eller ändrade registreringar över jämförbara utförare"),
    ("night-visits-private-provider", "Nattbesök av privat utförare"),
    ("phantom-clients", "Fakturerade brukare utan besök"),
    ("provider-without-permit", "Utförare utan giltigt tillstånd"),
    ("relative-employment", "Anhörig anställd hos brukaren"),
    ("hours-collapse-after-provider-change", "Timmarna rasar efter byte av utförare"),
    ("rounded-visits", "Spökbesök eller avrundade besök"),
    ("staff-double-booking", "Dubbelbokad personal"),
    ("staff-impossible-day", "Omöjlig arbetsdag eller ingen vila"),
    ("visit-above-granted-hours", "Besök över beviljade timmar"),
    ("visit-during-absence", "Besök under frånvaro"),
    ("visit-without-permit", "Besök av utförare utan giltigt tillstånd"),
    ("volume-explosion", "Kraftig volymökning"),
];

/// A rule's name by its id; the id itself for a rule this build does not
/// know (a newer service's).
pub fn rule_name(lang: Lang, rule_id: &str) -> String {
    let name = match lang {
        Lang::Sv => RULES_SV.iter().find(|(id, _)| *id == rule_id).map(|(_, n)| *n),
        Lang::En => tillsyn_core::rules::by_id(rule_id).map(|r| r.name),
    };
    name.unwrap_or(rule_id).to_string()
}

/// A number with at most `decimals` decimals, trailing zeros dropped:
/// `1 234,5` in Swedish (no-break space, decimal comma), `1,234.5` in
/// English. Not a number: `–`.
pub fn number(lang: Lang, value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let fixed = format!("{:.*}", decimals, value.abs());
    let (int, frac) = match fixed.split_once('.') {
        Some((i, f)) => (i, f.trim_end_matches('0')),
        None => (fixed.as_str(), ""),
    };
    let (group, point) = match lang {
        Lang::Sv => ('\u{a0}', ','),
        Lang::En => (',', '.'),
    };
    let mut out = String::new();
    let negative = value < 0.0 && (int != "0" || !frac.is_empty());
    if negative {
        // A hyphen-minus in both, as the alerts' explanations write it.
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(group);
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push(point);
        out.push_str(frac);
    }
    out
}

/// A unit's name for `value` of it (singular for exactly 1); a unit this
/// build does not know as it is.
pub fn unit(lang: Lang, unit: &str, value: f64) -> String {
    let one = value == 1.0;
    let (singular, plural) = match (lang, unit) {
        (Lang::Sv, "clients") => ("brukare", "brukare"),
        (Lang::Sv, "count") => ("st.", "st."),
        (Lang::Sv, "days") => ("dag", "dagar"),
        (Lang::Sv, "hours per client") => ("timme per brukare", "timmar per brukare"),
        (Lang::Sv, "hours") => ("timme", "timmar"),
        (Lang::Sv, "km/h") => ("km/h", "km/h"),
        (Lang::Sv, "lines") => ("fakturarad", "fakturarader"),
        (Lang::Sv, "metres") => ("meter", "meter"),
        (Lang::Sv, "minutes") => ("minut", "minuter"),
        (Lang::Sv, "visits") => ("besök", "besök"),
        (Lang::En, "clients") => ("client", "clients"),
        (Lang::En, "count") => ("", ""),
        (Lang::En, "days") => ("day", "days"),
        (Lang::En, "hours per client") => ("hour per client", "hours per client"),
        (Lang::En, "hours") => ("hour", "hours"),
        (Lang::En, "km/h") => ("km/h", "km/h"),
        (Lang::En, "lines") => ("invoice line", "invoice lines"),
        (Lang::En, "metres") => ("metre", "metres"),
        (Lang::En, "minutes") => ("minute", "minutes"),
        (Lang::En, "visits") => ("visit", "visits"),
        _ => return unit.to_string(),
    };
    if one { singular } else { plural }.to_string()
}

/// A value with its unit: `412,5 timmar`; a share as a percentage
/// (`42,5 %` in Swedish, `42.5%` in English).
pub fn measure(lang: Lang, value: f64, unit_name: &str) -> String {
    if unit_name == "share" {
        let percent = number(lang, value * 100.0, 1);
        return match lang {
            Lang::Sv => format!("{percent}\u{a0}%"),
            Lang::En => format!("{percent}%"),
        };
    }
    let decimals = if value.abs() >= 100.0 { 1 } else { 2 };
    match unit(lang, unit_name, value) {
        u if u.is_empty() => number(lang, value, decimals),
        u => format!("{}\u{a0}{u}", number(lang, value, decimals)),
    }
}

/// An instant as `YYYY-MM-DD HH:MM` in Swedish local time (CET/CEST).
pub fn datetime(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    };
    let (day, minute) = EventTime(secs).local_day_and_minute();
    format!("{day} {:02}:{:02}", minute / 60, minute % 60)
}

/// The explanation to show in `lang`, and its language when known: the
/// alert's text in `lang` (`explanations`, `{"sv": ..., "en": ...}`), else
/// the alert's `explanation` (the service's configured language; known
/// when `explanations` holds the same text under a language).
pub fn pick_explanation<'a>(
    lang: Lang,
    explanation: &'a str,
    explanations: &'a serde_json::Value,
) -> (&'a str, Option<&'a str>) {
    let texts = explanations.as_object();
    if let Some(text) = texts.and_then(|m| m.get(lang.code())).and_then(|v| v.as_str()).filter(|t| !t.is_empty()) {
        return (text, Some(lang.code()));
    }
    let known = texts.and_then(|m| m.iter().find(|(_, v)| v.as_str() == Some(explanation))).map(|(k, _)| k.as_str());
    (explanation, known)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn swedish_is_the_default_and_english_is_asked_for() {
        assert_eq!(Lang::from_param(None), Lang::Sv);
        assert_eq!(Lang::from_param(Some("")), Lang::Sv);
        assert_eq!(Lang::from_param(Some("sv")), Lang::Sv);
        assert_eq!(Lang::from_param(Some("fi")), Lang::Sv);
        assert_eq!(Lang::from_param(Some("en")), Lang::En);
        assert_eq!(Lang::from_param(Some(" EN ")), Lang::En);
        assert_eq!(Lang::Sv.other(), Lang::En);
        assert_eq!(Lang::En.query_pair(), Some(("lang", "en")));
        assert_eq!(Lang::Sv.query_pair(), None);
    }

    #[test]
    fn numbers_have_a_decimal_comma_and_grouped_thousands_in_swedish() {
        assert_eq!(number(Lang::Sv, 412.5, 2), "412,5");
        assert_eq!(number(Lang::En, 412.5, 2), "412.5");
        assert_eq!(number(Lang::Sv, 8600.0, 2), "8\u{a0}600");
        assert_eq!(number(Lang::En, 1_234_567.891, 2), "1,234,567.89");
        assert_eq!(number(Lang::Sv, 1_234_567.891, 2), "1\u{a0}234\u{a0}567,89");
        assert_eq!(number(Lang::Sv, 0.004, 2), "0");
        assert_eq!(number(Lang::Sv, -0.001, 2), "0", "no minus before a zero");
        assert_eq!(number(Lang::Sv, -3.25, 2), "-3,25");
        assert_eq!(number(Lang::En, -3.25, 2), "-3.25");
        assert_eq!(number(Lang::En, 100.0, 2), "100");
        assert_eq!(number(Lang::En, f64::NAN, 2), "–");
    }

    #[test]
    fn measures_carry_their_units_in_the_language() {
        assert_eq!(measure(Lang::Sv, 412.5, "hours"), "412,5\u{a0}timmar");
        assert_eq!(measure(Lang::En, 412.5, "hours"), "412.5\u{a0}hours");
        assert_eq!(measure(Lang::Sv, 1.0, "hours"), "1\u{a0}timme");
        assert_eq!(measure(Lang::En, 1.0, "days"), "1\u{a0}day");
        assert_eq!(measure(Lang::Sv, 3.0, "visits"), "3\u{a0}besök");
        assert_eq!(measure(Lang::Sv, 0.425, "share"), "42,5\u{a0}%");
        assert_eq!(measure(Lang::En, 0.425, "share"), "42.5%");
        assert_eq!(measure(Lang::En, 4.0, "count"), "4");
        assert_eq!(measure(Lang::Sv, 4.0, "count"), "4\u{a0}st.");
        assert_eq!(measure(Lang::Sv, 2.0, "furlongs"), "2\u{a0}furlongs", "an unknown unit as it is");
        // Every unit of the core has a Swedish name (km/h is one already;
        // a share is shown as a percentage).
        for u in tillsyn_core::finding::Unit::ALL {
            if !["share", "km/h"].contains(&u.name()) {
                assert_ne!(unit(Lang::Sv, u.name(), 2.0), u.name(), "{u} has no Swedish name");
            }
        }
    }

    #[test]
    fn times_are_swedish_local_time() {
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        // 2026-01-31 23:30 UTC is 2026-02-01 00:30 CET.
        assert_eq!(datetime(at(1_769_902_200)), "2026-02-01 00:30");
        // 2026-07-01 10:00 UTC is 12:00 CEST.
        assert_eq!(datetime(at(1_782_900_000)), "2026-07-01 12:00");
    }

    #[test]
    fn statuses_severities_and_rules_have_names_in_both_languages() {
        assert_eq!(status(Lang::Sv, "opened"), "Öppnad");
        assert_eq!(status(Lang::Sv, "escalated"), "Eskalerad");
        assert_eq!(status(Lang::Sv, "resolved"), "Avslutad");
        assert_eq!(status(Lang::En, "escalated"), "Escalated");
        assert_eq!(severity(Lang::Sv, "critical"), "Kritisk");
        assert_eq!(severity(Lang::En, "medium"), "Medium");
        assert_eq!(severity(Lang::Sv, "weird"), "weird");
        for rule in tillsyn_core::rules::ALL.iter() {
            assert_ne!(rule_name(Lang::Sv, rule.id), rule.id, "{} has no Swedish name", rule.id);
            assert_eq!(rule_name(Lang::En, rule.id), rule.name);
        }
        assert_eq!(rule_name(Lang::Sv, "a-newer-rule"), "a-newer-rule");
        assert_eq!(RULES_SV.len(), tillsyn_core::rules::ALL.len(), "no Swedish name of a rule that is gone");
    }

    #[test]
    fn the_explanation_is_the_readers_language_when_the_alert_has_it() {
        let both = serde_json::json!({"sv": "Fakturerade 412,5 timmar", "en": "Invoiced 412.5 hours"});
        assert_eq!(pick_explanation(Lang::Sv, "Invoiced 412.5 hours", &both), ("Fakturerade 412,5 timmar", Some("sv")));
        assert_eq!(pick_explanation(Lang::En, "Invoiced 412.5 hours", &both), ("Invoiced 412.5 hours", Some("en")));
        let english_only = serde_json::json!({"en": "Invoiced 412.5 hours"});
        assert_eq!(
            pick_explanation(Lang::Sv, "Invoiced 412.5 hours", &english_only),
            ("Invoiced 412.5 hours", Some("en"))
        );
        // Before the alerts carried translations: the one text, language unknown.
        let none = serde_json::json!({});
        assert_eq!(pick_explanation(Lang::Sv, "Invoiced 412.5 hours", &none), ("Invoiced 412.5 hours", None));
        let empty = serde_json::json!({"sv": ""});
        assert_eq!(pick_explanation(Lang::Sv, "x", &empty), ("x", None));
    }
}
