//! Ground truth written by the simulator and read by the evaluator.
//!
//! A [`GroundTruth`] file (JSON) names the simulated period, every provider
//! (so that clean providers count in false-alert rates) and one [`Label`] per
//! injected fraud scenario. Times are RFC 3339.

use pbjson_types::Timestamp;

/// Everything the evaluator needs to score alerts of one simulated run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroundTruth {
    /// The simulator seed.
    pub seed: u64,
    /// First simulated instant.
    pub start: Timestamp,
    /// End of the simulation (exclusive).
    pub end: Timestamp,
    /// Every simulated provider, fraudulent or not.
    pub providers: Vec<ProviderInfo>,
    /// One label per injected fraud scenario.
    pub labels: Vec<Label>,
}

/// A simulated provider.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderInfo {
    /// Organisation number, `NNNNNN-NNNN`.
    pub provider_id: String,
    /// Municipality code.
    pub municipality_code: String,
    /// A readable name, e.g. "Omsorg Norr AB".
    pub name: String,
    /// Whether this is the municipality's own unit.
    pub municipal: bool,
    /// Number of clients at the start.
    pub clients: u32,
}

/// One injected fraud scenario at one provider.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Label {
    /// Organisation number of the fraudulent provider.
    pub provider_id: String,
    /// The municipality it defrauds (a provider with branches in several
    /// municipalities is judged in each separately).
    pub municipality_code: String,
    /// Pattern number of the domain catalogue (1–14).
    pub pattern: u32,
    /// Pattern name, for people.
    pub pattern_name: String,
    /// When the fraud starts (event time).
    pub start: Timestamp,
    /// When it ends (exclusive; the simulation end if it never stops).
    pub end: Timestamp,
    /// The first moment the fraud could be seen in the data: the first
    /// fraudulent time report, or the issue time of the first invoice that
    /// carries it for invoice-based patterns.
    pub observable_at: Timestamp,
    /// How strongly the fraud was committed, 0 (the subtlest the
    /// simulator injects) to 1 (the most blatant); absent in ground truth
    /// written before intensities were drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intensity: Option<f64>,
    /// What exactly was injected, for people.
    pub note: String,
}

/// The evaluation's intensity buckets: thirds of the intensity range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum IntensityBucket {
    /// Intensity below 1/3: a few percent over, a few times a month.
    Subtle,
    /// 1/3 to 2/3.
    Moderate,
    /// 2/3 and above.
    Blatant,
}

impl IntensityBucket {
    /// Every bucket, subtle first.
    pub const ALL: [IntensityBucket; 3] =
        [IntensityBucket::Subtle, IntensityBucket::Moderate, IntensityBucket::Blatant];

    /// The bucket of `intensity`.
    pub fn of(intensity: f64) -> IntensityBucket {
        if intensity < 1.0 / 3.0 {
            IntensityBucket::Subtle
        } else if intensity < 2.0 / 3.0 {
            IntensityBucket::Moderate
        } else {
            IntensityBucket::Blatant
        }
    }

    /// Its name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            IntensityBucket::Subtle => "subtle",
            IntensityBucket::Moderate => "moderate",
            IntensityBucket::Blatant => "blatant",
        }
    }
}

impl Label {
    /// The intensity bucket of this label, if its intensity is known.
    pub fn bucket(&self) -> Option<IntensityBucket> {
        self.intensity.map(IntensityBucket::of)
    }
}

impl GroundTruth {
    /// Reads a ground-truth file.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path)?;
        Ok(serde_json::from_reader(std::io::BufReader::new(file))?)
    }

    /// Writes a ground-truth file (pretty JSON).
    pub fn write(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let file = std::fs::File::create(path)?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(file), self)?;
        Ok(())
    }
}
