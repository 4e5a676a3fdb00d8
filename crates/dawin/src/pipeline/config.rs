//! What a two-model evaluation is asked for: the methods of the table ([`Method`]), the
//! coefficient formula ([`Coefficient`]), the settings ([`EvalConfig`]) and the models with
//! their names and cache fingerprints ([`Named`]).
use crate::error::{Error, Result};
use std::path::PathBuf;

/// A method of the comparison table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// θ0 alone (zero-shot).
    Zs,
    /// θ1 alone (fine-tuned).
    Ft,
    /// WiSE-FT: one λ from the grid {0, 0.1, …, 1} picked on ID validation.
    Wise,
    /// Static output ensemble `(1 − a) p0 + a p1`, `a` on the grid picked on ID validation.
    Ensemble,
    /// Dynamic classifier selection: the lower-entropy model's prediction.
    Dcs,
    /// Dynamic output ensemble: `(1 − λ(x)) p0 + λ(x) p1`.
    Doe,
    /// DaWin with the K-component Beta mixture: one merge per cluster.
    Dawin,
    /// DaWin without the mixture: one λ per sample.
    DawinSample,
    /// Oracle: λ*(x) = p1(y)/(p0(y) + p1(y)) from the true labels.
    OracleSample,
    /// Oracle: the WiSE-FT grid evaluated on the test set itself, best per dataset.
    OracleDomain,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 10] = [
        Method::Zs,
        Method::Ft,
        Method::Wise,
        Method::Ensemble,
        Method::Dcs,
        Method::Doe,
        Method::Dawin,
        Method::DawinSample,
        Method::OracleSample,
        Method::OracleDomain,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Zs => "zs",
            Method::Ft => "ft",
            Method::Wise => "wise",
            Method::Ensemble => "ensemble",
            Method::Dcs => "dcs",
            Method::Doe => "doe",
            Method::Dawin => "dawin",
            Method::DawinSample => "dawin-sample",
            Method::OracleSample => "oracle-sample",
            Method::OracleDomain => "oracle-domain",
        }
    }

    /// Parses a command-line name; the error lists the valid names.
    pub fn parse(s: &str) -> Result<Method> {
        parse_name(s, &Method::ALL, |m| m.name())
    }
}

/// The method of `all` named `s`; the error (naming `--methods`) lists the valid names.
pub(crate) fn parse_name<M: Copy>(s: &str, all: &[M], name: fn(M) -> &'static str) -> Result<M> {
    all.iter().copied().find(|&m| name(m) == s).ok_or_else(|| {
        let names: Vec<_> = all.iter().map(|&m| name(m)).collect();
        Error::invalid(
            "--methods",
            format!("unknown method `{s}`; expected one of {}", names.join(", ")),
        )
    })
}

/// Which coefficient formula gives λ(x).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coefficient {
    /// Eq. 1: `e_1 / (e_0 + e_1)`.
    Eq1,
    /// Eq. 2: `(e_1 + O/T) / (e_0 + e_1 + O)` with the domain offset (the default).
    Eq2,
}

impl Coefficient {
    /// `eq1` or `eq2`, as the report names it.
    pub fn name(self) -> &'static str {
        match self {
            Coefficient::Eq1 => "eq1",
            Coefficient::Eq2 => "eq2",
        }
    }
}

/// Pipeline settings.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// Methods to evaluate, in table order.
    pub methods: Vec<Method>,
    /// Components of the Beta mixture (`dawin`). Default 3.
    pub k: usize,
    /// Expertise metric by name ([`dawin_core::expertise::expertise_by_name`]). Default `entropy`.
    pub expertise: String,
    /// Eq. 1 or Eq. 2 (default).
    pub coefficient: Coefficient,
    /// WiSE-FT plug-in: λ_wise(x) = α·λ(x) for `dawin`, `dawin-sample` and `doe`.
    pub wise_alpha: Option<f32>,
    /// Samples per forward batch. Default 64.
    pub batch_size: usize,
    /// Seed of the mixture fit.
    pub seed: u64,
    /// Temperatures (T0, T1); fitted on the validation set when `None`.
    pub temperatures: Option<(f32, f32)>,
    /// Where θ0/θ1 logits are cached; no cache when `None`.
    pub cache_dir: Option<PathBuf>,
    /// Evaluate the WiSE-FT grid on every dataset (for the ID-vs-OOD plot's curve; implied by
    /// `oracle-domain`). Costs 9 extra forwards per dataset.
    pub wise_curve: bool,
    /// Draw progress bars (only when stdout is a terminal).
    pub progress: bool,
    /// The device, as reported.
    pub device: String,
    /// Per-sample methods (`dawin-sample`, `oracle-sample`) merge θ(λ) once per distinct λ even
    /// when the model has a blended per-sample forward
    /// ([`crate::Interpolate::per_sample_forward`]); for checking the blended path.
    pub exact_loop: bool,
    /// Largest accepted `‖θ1 − θ0‖/‖θ0‖` ([`crate::Interpolate::relative_distance`]): above it
    /// θ1 is refused as a fine-tune of another base. Default 1.0 (the demo's θ1 lies at 0.16, two
    /// unrelated weight sets of similar norm about √2 apart).
    pub max_distance: f64,
    /// When the cache holds an incomplete set of shards of a dataset's logits (`dawin logits
    /// --shard I/N`), compute and store the missing shards instead of failing (the error names
    /// them). Default false.
    pub compute_missing_shards: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            methods: Method::ALL.to_vec(),
            k: 3,
            expertise: "entropy".into(),
            coefficient: Coefficient::Eq2,
            wise_alpha: None,
            batch_size: 64,
            seed: 0,
            temperatures: None,
            cache_dir: None,
            wise_curve: false,
            progress: true,
            device: "cpu".into(),
            exact_loop: false,
            max_distance: 1.0,
            compute_missing_shards: false,
        }
    }
}

impl EvalConfig {
    /// Whether `m` is one of the methods.
    pub fn has(&self, m: Method) -> bool {
        self.methods.contains(&m)
    }
}

/// A model with a display name and a content fingerprint (the cache key; e.g.
/// [`crate::data::file_fingerprint`] of its checkpoint).
pub struct Named<'a, M> {
    /// Display name.
    pub name: String,
    /// The model.
    pub model: &'a M,
    /// Content fingerprint.
    pub fingerprint: String,
}

impl<'a, M> Named<'a, M> {
    /// Bundles a model with its name and fingerprint.
    pub fn new(name: impl Into<String>, model: &'a M, fingerprint: impl Into<String>) -> Self {
        Named {
            name: name.into(),
            model,
            fingerprint: fingerprint.into(),
        }
    }
}
