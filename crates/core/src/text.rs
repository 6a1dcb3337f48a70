//! Explanations in Swedish and English.
//!
//! An alert's explanation is written for a Swedish municipal case officer
//! (handläggare, kontrollenhet), in Swedish with the terms of the trade
//! (utförare, brukare, insats, besök, tidrapport, faktura), and in English
//! for everyone else. Each rule builds both from the same figures, next to
//! each other in its own file, into a [`Text`]; the formatting of those
//! figures is here, once per language ([`sv`], [`en`]), so that the
//! languages differ in words and number format only, never in the figures
//! (a test per rule checks it).
//!
//! Swedish formats follow Språkrådet's recommendations: decimal comma,
//! a no-break space between groups of thousands (`1 234,5`) and before
//! the percent sign (`12,5 %`), dates as ISO 8601 (`2026-03-02`, the
//! Swedish standard), months by name (`mars 2026`), times of day with a
//! full stop (`kl. 06.00`). English keeps the formats its explanations
//! have always had (`1234.5`, `12.5 %`).
//!
//! Which language fills the contract's `explanation` field is the
//! configuration's [`Language`] (`core.language`); the alert carries both.

use crate::model::{Day, Month};

/// A language tillsyn writes explanations in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Swedish (`sv`), for the municipality's case officers: the default.
    #[default]
    Sv,
    /// English (`en`).
    En,
}

impl Language {
    /// Every language, in the order of their tags.
    pub const ALL: [Language; 2] = [Language::En, Language::Sv];

    /// Its BCP 47 tag: the configuration's value and the key of the
    /// contract's `explanations` map.
    pub fn tag(self) -> &'static str {
        match self {
            Language::Sv => "sv",
            Language::En => "en",
        }
    }
}

/// A text in both languages, built from the same figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Text {
    /// English.
    pub en: String,
    /// Swedish. Empty only in a finding written by a build before Swedish
    /// explanations (read back from JSON); [`Text::get`] then gives the
    /// English.
    pub sv: String,
}

impl Text {
    /// The text in `language`; the English if there is no Swedish (a
    /// finding of an older build).
    pub fn get(&self, language: Language) -> &str {
        match language {
            Language::Sv if !self.sv.is_empty() => &self.sv,
            _ => &self.en,
        }
    }

    /// Every language the text is written in, with the text, in tag order.
    pub fn entries(&self) -> impl Iterator<Item = (Language, &str)> {
        Language::ALL.into_iter().map(|l| (l, self.get(l))).filter(move |(l, _)| match l {
            Language::Sv => !self.sv.is_empty(),
            Language::En => true,
        })
    }

    /// Each language's text with `f` of it and the same language (e.g. a
    /// sentence around it).
    pub fn map(&self, f: impl Fn(Language, &str) -> String) -> Text {
        Text {
            en: f(Language::En, &self.en),
            sv: if self.sv.is_empty() { String::new() } else { f(Language::Sv, &self.sv) },
        }
    }
}

/// Reads a [`Text`]. Self-describing formats (JSON: the staff-findings
/// topic) also take a plain string, the English-only explanation of a
/// finding written by a build before Swedish explanations, so records
/// written before an upgrade are still read.
impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename = "Text")]
        struct Both {
            en: String,
            sv: String,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Any {
            Both(Both),
            English(String),
        }
        if d.is_human_readable() {
            Ok(match Any::deserialize(d)? {
                Any::Both(b) => Text { en: b.en, sv: b.sv },
                Any::English(en) => Text { en, sv: String::new() },
            })
        } else {
            let b = Both::deserialize(d)?;
            Ok(Text { en: b.en, sv: b.sv })
        }
    }
}

/// A fixed phrase in both languages (for texts declared as constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phrase {
    /// English.
    pub en: &'static str,
    /// Swedish.
    pub sv: &'static str,
}

/// Drops the sign of a formatted zero (`-0.0` → `0.0`).
fn unsigned_zero(s: String) -> String {
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => s,
    }
}

/// `x` rounded to `decimals` decimals, as Rust formats it (`1234.5`).
fn plain(x: f64, decimals: usize) -> String {
    unsigned_zero(format!("{x:.decimals$}"))
}

/// `x` rounded to two decimals.
fn trimmed(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The decimals (0 to 2) `x` rounded to two needs.
fn decimals_needed(x: f64) -> usize {
    let s = plain(trimmed(x), 2);
    match s.trim_end_matches('0').split_once('.') {
        Some((_, frac)) => frac.len(),
        None => 0,
    }
}

/// Swedish formats: decimal comma, no-break spaces between thousands.
pub mod sv {
    use super::{Day, Month, plain};

    /// The no-break space between groups of thousands and before `%`.
    pub const NBSP: char = '\u{a0}';

    const MONTHS: [&str; 12] = [
        "januari",
        "februari",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "augusti",
        "september",
        "oktober",
        "november",
        "december",
    ];

    /// Groups the digits of a non-negative integer part by thousands.
    fn group(digits: &str) -> String {
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 * 2);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(NBSP);
            }
            out.push(c);
        }
        out
    }

    /// `x` with `decimals` decimals (rounded as the English is), decimal
    /// comma and thousands grouped: `1 234,5`. Not-a-number and infinities
    /// as Rust writes them.
    pub fn num(x: f64, decimals: usize) -> String {
        if !x.is_finite() {
            return x.to_string();
        }
        let s = plain(x, decimals);
        let (sign, s) = match s.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", s.as_str()),
        };
        match s.split_once('.') {
            Some((int, frac)) => format!("{sign}{},{frac}", group(int)),
            None => format!("{sign}{}", group(s)),
        }
    }

    /// A whole number: `12 345`.
    pub fn int(n: u64) -> String {
        group(&n.to_string())
    }

    /// A percentage (`pct` in percent) with `decimals` decimals: `12,5 %`.
    pub fn percent(pct: f64, decimals: usize) -> String {
        format!("{}{NBSP}%", num(pct, decimals))
    }

    /// Hours: `12,5 timmar`, `1 timme`.
    pub fn hours(h: f64, decimals: usize) -> String {
        hours_of(num(h, decimals))
    }

    /// A setting's value, as few decimals as it needs (at most two):
    /// `3,5`, `0,15`, `1`.
    pub fn short(x: f64) -> String {
        num(super::trimmed(x), super::decimals_needed(x))
    }

    /// A setting's percentage, as few decimals as it needs: `2 %`, `2,5 %`.
    pub fn percent_short(pct: f64) -> String {
        format!("{}{NBSP}%", short(pct))
    }

    /// A setting's hours, as few decimals as they need: `1 timme`, `1,5 timmar`.
    pub fn hours_short(h: f64) -> String {
        hours_of(short(h))
    }

    fn hours_of(n: String) -> String {
        let word = if n == "1" { "timme" } else { "timmar" };
        format!("{n} {word}")
    }

    /// A count with its noun: `1 rad`, `3 rader`.
    pub fn count(n: u64, one: &str, many: &str) -> String {
        format!("{} {}", int(n), if n == 1 { one } else { many })
    }

    /// A date, ISO 8601 as in Swedish use: `2026-03-02`.
    pub fn date(day: Day) -> String {
        day.to_string()
    }

    /// A month by name: `mars 2026`.
    pub fn month(month: Month) -> String {
        format!("{} {}", MONTHS[month.0.rem_euclid(12) as usize], month.0.div_euclid(12))
    }

    /// A time of day `HH:MM` written the Swedish way, `HH.MM`.
    pub fn clock(hh_mm: &str) -> String {
        hh_mm.replace(':', ".")
    }
}

/// English formats, as the explanations have always been written.
pub mod en {
    use super::{Day, Month, plain};

    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];

    /// `x` with `decimals` decimals: `1234.5`.
    pub fn num(x: f64, decimals: usize) -> String {
        if !x.is_finite() {
            return x.to_string();
        }
        plain(x, decimals)
    }

    /// A whole number: `12345`.
    pub fn int(n: u64) -> String {
        n.to_string()
    }

    /// A percentage (`pct` in percent) with `decimals` decimals: `12.5 %`.
    pub fn percent(pct: f64, decimals: usize) -> String {
        format!("{} %", num(pct, decimals))
    }

    /// Hours: `12.5 hours`, `1 hour`.
    pub fn hours(h: f64, decimals: usize) -> String {
        hours_of(num(h, decimals))
    }

    /// A setting's value, as few decimals as it needs (at most two):
    /// `3.5`, `0.15`, `1`.
    pub fn short(x: f64) -> String {
        num(super::trimmed(x), super::decimals_needed(x))
    }

    /// A setting's percentage, as few decimals as it needs: `2 %`, `2.5 %`.
    pub fn percent_short(pct: f64) -> String {
        format!("{} %", short(pct))
    }

    /// A setting's hours, as few decimals as they need: `1 hour`, `1.5 hours`.
    pub fn hours_short(h: f64) -> String {
        hours_of(short(h))
    }

    fn hours_of(n: String) -> String {
        let word = if n == "1" { "hour" } else { "hours" };
        format!("{n} {word}")
    }

    /// A count with its noun: `1 line`, `3 lines`.
    pub fn count(n: u64, one: &str, many: &str) -> String {
        format!("{n} {}", if n == 1 { one } else { many })
    }

    /// A date, ISO 8601: `2026-03-02`.
    pub fn date(day: Day) -> String {
        day.to_string()
    }

    /// A month by name: `March 2026`.
    pub fn month(month: Month) -> String {
        format!("{} {}", MONTHS[month.0.rem_euclid(12) as usize], month.0.div_euclid(12))
    }

    /// A time of day `HH:MM`, as written.
    pub fn clock(hh_mm: &str) -> String {
        hh_mm.to_string()
    }
}

/// The figures of a text, for tests: every number in it, normalised (the
/// Swedish thousands grouping removed, a decimal comma read as a point),
/// in order. A number is a run of digits with, in Swedish, groups of three
/// after a no-break space and a decimal part after a comma, in English a
/// decimal part after a point; anything else separates numbers (so the
/// digits of an id or a date count the same in both languages).
#[cfg(test)]
pub(crate) fn figures(text: &str, language: Language) -> Vec<String> {
    figure_spans(text, language).into_iter().map(|(_, n)| n).collect()
}

/// [`figures`] with where each is in `text` (a range of char indices).
#[cfg(test)]
pub(crate) fn figure_spans(text: &str, language: Language) -> Vec<(std::ops::Range<usize>, String)> {
    let c: Vec<char> = text.chars().collect();
    let digit = |i: usize| c.get(i).is_some_and(char::is_ascii_digit);
    let (group_sep, decimal_sep): (&[char], char) = match language {
        Language::Sv => (&[sv::NBSP, '\u{202f}'], ','),
        Language::En => (&[], '.'),
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if !digit(i) {
            i += 1;
            continue;
        }
        let start = i;
        let mut n = String::new();
        while digit(i) {
            n.push(c[i]);
            i += 1;
        }
        // Groups of exactly three digits after a thousands separator.
        while i < c.len() && group_sep.contains(&c[i]) && (1..=3).all(|k| digit(i + k)) && !digit(i + 4) {
            n.extend(&c[i + 1..i + 4]);
            i += 4;
        }
        if c.get(i) == Some(&decimal_sep) && digit(i + 1) {
            n.push('.');
            i += 1;
            while digit(i) {
                n.push(c[i]);
                i += 1;
            }
        }
        out.push((start..i, n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swedish_numbers_have_a_decimal_comma_and_grouped_thousands() {
        assert_eq!(sv::num(1234.5, 1), "1\u{a0}234,5");
        assert_eq!(sv::num(1_234_567.891, 2), "1\u{a0}234\u{a0}567,89");
        assert_eq!(sv::num(999.96, 1), "1\u{a0}000,0", "rounded as the English");
        assert_eq!(en::num(999.96, 1), "1000.0");
        assert_eq!(sv::num(12.0, 0), "12");
        assert_eq!(sv::num(0.35, 2), "0,35");
        assert_eq!(sv::num(-1234.0, 0), "-1\u{a0}234");
        assert_eq!(sv::num(-0.01, 1), "0,0", "no negative zero");
        assert_eq!(en::num(-0.01, 1), "0.0");
        assert_eq!(sv::num(f64::NAN, 1), "NaN");
        assert_eq!(sv::int(0), "0");
        assert_eq!(sv::int(100), "100");
        assert_eq!(sv::int(1000), "1\u{a0}000");
        assert_eq!(sv::int(12_345), "12\u{a0}345");
        assert_eq!(sv::int(123_456_789), "123\u{a0}456\u{a0}789");
        assert_eq!(en::int(12_345), "12345");
    }

    #[test]
    fn percent_hours_counts_dates_and_times() {
        assert_eq!(sv::percent(12.5, 1), "12,5\u{a0}%");
        assert_eq!(en::percent(12.5, 1), "12.5 %");
        assert_eq!(sv::hours(12.5, 1), "12,5 timmar");
        assert_eq!(sv::hours(1.0, 0), "1 timme");
        assert_eq!(sv::hours(1.0, 1), "1,0 timmar");
        assert_eq!(sv::hours(2500.0, 0), "2\u{a0}500 timmar");
        assert_eq!(en::hours(1.0, 0), "1 hour");
        assert_eq!(en::hours(2.25, 1), "2.2 hours");
        assert_eq!(sv::short(3.5), "3,5");
        assert_eq!(sv::short(0.15), "0,15");
        assert_eq!(sv::short(2.0), "2");
        assert_eq!(sv::short(1234.5678), "1\u{a0}234,57");
        assert_eq!(en::short(0.1), "0.1");
        assert_eq!(en::short(80.0), "80");
        assert_eq!(sv::hours_short(1.0), "1 timme");
        assert_eq!(sv::hours_short(1.5), "1,5 timmar");
        assert_eq!(en::hours_short(1.0), "1 hour");
        assert_eq!(sv::percent_short(2.5), "2,5\u{a0}%");
        assert_eq!(en::percent_short(2.0), "2 %");
        assert_eq!(sv::count(1, "rad", "rader"), "1 rad");
        assert_eq!(sv::count(3, "rad", "rader"), "3 rader");
        assert_eq!(en::count(1, "line", "lines"), "1 line");
        assert_eq!(sv::date(Day::from_ymd(2026, 3, 2)), "2026-03-02");
        assert_eq!(en::date(Day::from_ymd(2026, 3, 2)), "2026-03-02");
        assert_eq!(sv::month(Month::from_ym(2026, 3)), "mars 2026");
        assert_eq!(sv::month(Month::from_ym(2025, 12)), "december 2025");
        assert_eq!(en::month(Month::from_ym(2026, 1)), "January 2026");
        assert_eq!(sv::clock("06:00"), "06.00");
    }

    #[test]
    fn figures_read_both_formats_to_the_same_numbers() {
        let sv_text =
            "Faktura inv-7 för mars 2026: 1\u{a0}234,5 timmar (12,5\u{a0}%), 3 rader, kl. 06.00, 556100-0002.";
        let en_text = "Invoice inv-7 for March 2026: 1234.5 hours (12.5 %), 3 lines, 06:00, 556100-0002.";
        let sv = figures(sv_text, Language::Sv);
        assert_eq!(sv, ["7", "2026", "1234.5", "12.5", "3", "06", "00", "556100", "0002"]);
        assert_eq!(figures(en_text, Language::En), sv);
        // A point is no decimal sign in Swedish, nor a comma in English;
        // a list "1, 2" is two numbers in both.
        assert_eq!(figures("12.5", Language::Sv), ["12", "5"]);
        assert_eq!(figures("12,5", Language::En), ["12", "5"]);
        assert_eq!(figures("1, 2.", Language::Sv), ["1", "2"]);
        // A no-break space before a group of other than three digits separates.
        assert_eq!(figures("12\u{a0}34 och 5\u{a0}0001", Language::Sv), ["12", "34", "5", "0001"]);
    }

    #[test]
    fn a_text_reads_as_both_or_as_the_english_of_an_older_build() {
        let both = Text { en: "Two visits.".into(), sv: "Två besök.".into() };
        let json = serde_json::to_string(&both).unwrap();
        assert_eq!(json, r#"{"en":"Two visits.","sv":"Två besök."}"#);
        assert_eq!(serde_json::from_str::<Text>(&json).unwrap(), both);
        let old: Text = serde_json::from_str(r#""Two visits.""#).unwrap();
        assert_eq!(old, Text { en: "Two visits.".into(), sv: String::new() });
        assert_eq!(old.get(Language::Sv), "Two visits.", "no Swedish: the English");
        assert_eq!(old.entries().map(|(l, _)| l.tag()).collect::<Vec<_>>(), ["en"]);
        assert_eq!(both.get(Language::Sv), "Två besök.");
        assert_eq!(
            both.entries().map(|(l, t)| (l.tag(), t)).collect::<Vec<_>>(),
            [("en", "Two visits."), ("sv", "Två besök.")]
        );
        let bytes = postcard::to_allocvec(&both).unwrap();
        assert_eq!(postcard::from_bytes::<Text>(&bytes).unwrap(), both);
    }

    #[test]
    fn the_language_is_written_as_its_tag() {
        for l in Language::ALL {
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{}\"", l.tag()));
        }
        assert_eq!(Language::default(), Language::Sv);
        assert!(serde_json::from_str::<Language>("\"de\"").is_err());
    }
}
