//! The evaluation pipeline, one file per stage of the paper, read in this order:
//!
//! | stage | file | what it computes |
//! |---|---|---|
//! | 0 inputs | `checks.rs` | every check before any forward |
//! | 0 inputs | `zeroshot.rs` | θ0's zero-shot head from class names (text tower), cached |
//! | 1 logits | `logits.rs`, `cache.rs` | `z_j = f(x; θ_j)` per dataset, mapped to its classes; the on-disk cache (whole or sharded); heads `W f + b` |
//! | 2 coefficients | `coefficients.rs` | `T_j`, `e_j = exp(score_j)`, λ(x) by Eq. 1 / Eq. 2, α |
//! | 3 clustering | `clustering.rs` | the Beta / Dirichlet mixture, `k_i`, `λ_k = a_k/(a_k+b_k)` |
//! | 4 merged forwards | `merged.rs` | `θ(λ) = (1 − λ)θ0 + λθ1` per group, blended, the loop |
//! | baselines | `baselines.rs` | WiSE-FT, output ensemble, DCS, DOE, the oracles' grid |
//! | 5 report | `report.rs` | rows, per-sample arrays, timings, files |
//!
//! `config.rs` holds the settings and methods, `eval.rs` the two-model `evaluate` that calls
//! the stages in order, `streaming.rs` the same stages batch by batch, and `mtl/`
//! the multi-task evaluation on the same stages with its own parts: `mtl/lambda.rs`
//! (`λ_j(x) = softmax_j(−H_j(x))` and the heat map's means), `mtl/task_arithmetic.rs`
//! (task arithmetic, TIES, the task-vector distance) and `mtl/report.rs`.
//!
//! No import circle: `config`, `cache` and `clustering` import no stage; `logits` imports
//! `config` and `cache`;
//! `checks`, `coefficients` and `merged` import `logits`; `report` imports `config` and
//! `clustering`; `baselines` imports `logits` and `report`; `eval`, `streaming` and `mtl` import
//! the stages (docs/architecture.md lists every edge).
pub(crate) mod baselines;
pub(crate) mod cache;
pub(crate) mod checks;
pub(crate) mod clustering;
pub(crate) mod coefficients;
pub(crate) mod config;
pub(crate) mod eval;
pub(crate) mod logits;
pub(crate) mod merged;
pub(crate) mod mtl;
pub(crate) mod report;
pub(crate) mod streaming;
pub(crate) mod zeroshot;
