//! What a multi-task evaluation is asked for: the rows of the table ([`MtlMethod`]), the
//! settings ([`MtlConfig`]) and the evaluation datasets with their heads ([`MtlTask`]).
use crate::data::Dataset;
use crate::error::Result;
use crate::pipeline::config::parse_name;
use dawin_vit::Linear;

/// A method (row group) of the multi-task table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MtlMethod {
    /// One row per fine-tuned model `θ_j`, named `ft:<name>`.
    Individual,
    /// `individual†`: on dataset `D` the fine-tuned model named `D` (the true expert).
    IndividualOracle,
    /// The base encoder θ0 with each dataset's head (zero-shot).
    Base,
    /// Weight averaging: `θ0 + (1/M) Σ_j τ_j`.
    WeightAvg,
    /// Task arithmetic: `θ0 + s_TA Σ_j τ_j` (`s_TA` = 0.3 by default).
    TaskArithmetic,
    /// TIES-merging: trim, elect sign, disjoint mean
    /// ([`dawin_core::merge::ties_task_vector`]), then `θ0 + s τ_m`.
    Ties,
    /// DaWin with the Dirichlet mixture: one merge per mixture component and dataset.
    Dawin,
    /// DaWin per sample (no mixture): exact blended forward with coefficients `s·λ_ij`.
    DawinSample,
}

impl MtlMethod {
    /// Every method, in table order.
    pub const ALL: [MtlMethod; 8] = [
        MtlMethod::Individual,
        MtlMethod::IndividualOracle,
        MtlMethod::Base,
        MtlMethod::WeightAvg,
        MtlMethod::TaskArithmetic,
        MtlMethod::Ties,
        MtlMethod::Dawin,
        MtlMethod::DawinSample,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            MtlMethod::Individual => "individual",
            MtlMethod::IndividualOracle => "individual-oracle",
            MtlMethod::Base => "base",
            MtlMethod::WeightAvg => "weight-avg",
            MtlMethod::TaskArithmetic => "task-arithmetic",
            MtlMethod::Ties => "ties",
            MtlMethod::Dawin => "dawin",
            MtlMethod::DawinSample => "dawin-sample",
        }
    }

    /// Parses a command-line name; the error lists the valid names.
    pub fn parse(s: &str) -> Result<MtlMethod> {
        parse_name(s, &MtlMethod::ALL, |m| m.name())
    }
}

/// Settings of [`crate::mtl::evaluate_mtl`].
#[derive(Clone, Debug)]
pub struct MtlConfig {
    /// Methods, in table order. Default: all.
    pub methods: Vec<MtlMethod>,
    /// DaWin's scale `s`; `None` = `0.3·M` ([`dawin_core::coef::default_scale`], the reference
    /// code's Table 6).
    pub scale: Option<f32>,
    /// Task arithmetic's scale. Default 0.3.
    pub ta_scale: f32,
    /// Components of the Dirichlet mixture (`dawin`). Default 1 (the paper).
    pub k: usize,
    /// TIES: fraction of each task vector's largest magnitudes kept. Default 0.2.
    pub ties_top: f32,
    /// TIES: scale of the merged task vector. Default 0.3.
    pub ties_scale: f32,
    /// Samples per forward batch. Default 64.
    pub batch_size: usize,
    /// Seed of the mixture fit.
    pub seed: u64,
    /// Draw progress bars (only when stdout is a terminal).
    pub progress: bool,
    /// Largest accepted relative distance `‖θ_j − θ0‖ / ‖θ0‖` of a fine-tuned encoder from the
    /// base ([`crate::mtl::relative_distance`]). Default 1.0: the demo's fine-tunes lie at
    /// 0.10–0.16, two unrelated weight sets of similar norm about √2 apart.
    pub max_distance: f64,
}

impl Default for MtlConfig {
    fn default() -> Self {
        MtlConfig {
            methods: MtlMethod::ALL.to_vec(),
            scale: None,
            ta_scale: 0.3,
            k: 1,
            ties_top: 0.2,
            ties_scale: 0.3,
            batch_size: 64,
            seed: 0,
            progress: true,
            max_distance: 1.0,
        }
    }
}

/// One evaluation dataset with its own classification head.
pub struct MtlTask<'a> {
    /// The dataset's name (`individual†` uses the fine-tuned model of this name).
    pub name: String,
    /// Its head: `logits = W f/‖f‖ + b`, `W` `[C, E]`.
    pub head: Linear,
    /// Its labelled samples.
    pub data: &'a dyn Dataset,
}
