//! The multi-task coefficient stage, and the heat map's data.
//!
//! On dataset `D`, each fine-tuned model j's entropy `H_j(x) = −Σ_c p_c log p_c`,
//! `p = softmax(z_j(x))` at temperature 1 with `D`'s head, gives the λ vector
//!
//! ```text
//! λ_j(x) = softmax_j(−H_j(x)),        θ(x) = θ0 + s Σ_j λ_j(x) τ_j,
//! ```
//!
//! (the Dirichlet mixture over these vectors plays the Beta mixture's part). The heat map (the
//! paper's Fig. 7) shows, per dataset, the mean `λ_j` of each model ([`mean_lambda`]).
use crate::error::Result;
use crate::pipeline::report::TaskArrays;
use dawin_core::{coef, stats};
use std::collections::BTreeMap;

/// Entropies `[N, M]` (row-major, model j in column j) of the fine-tuned models' logits on one
/// dataset: `H_j(x_i) = −Σ_c p_c log p_c`, `p = softmax(z_j(x_i))` (temperature 1).
fn entropy_matrix(logits: &[&[f32]], n_classes: usize) -> Result<Vec<f32>> {
    let cols = logits
        .iter()
        .map(|z| {
            Ok(stats::entropy(z, n_classes, 1.0)?
                .into_iter()
                .map(f64::from)
                .collect())
        })
        .collect::<Result<Vec<Vec<f64>>>>()?;
    Ok(coef::stack_columns(&cols)?
        .into_iter()
        .map(|v| v as f32)
        .collect())
}

/// λ vectors `[N, M]` of one dataset from the fine-tuned models' logits on it (with its head):
/// `λ_ij = softmax_j(−H_j(x_i))`, `H_j` the entropy at temperature 1.
pub fn lambda_vectors(logits: &[&[f32]], n_classes: usize) -> Result<Vec<f32>> {
    lambda_from_entropy(&entropy_matrix(logits, n_classes)?, logits.len())
}

/// λ vectors `[N, M]` from entropies `[N, M]`: `λ_ij = softmax_j(−H_ij)`.
fn lambda_from_entropy(h: &[f32], m: usize) -> Result<Vec<f32>> {
    let neg: Vec<f64> = h.iter().map(|&v| -(v as f64)).collect();
    Ok(coef::lambda_multi(&neg, m)?)
}

/// The coefficient stage on one dataset: the entropies and λ vectors of the M fine-tuned
/// models' logits `logits[j]` (`n_classes` classes).
pub(crate) fn task_arrays(logits: &[Vec<f32>], n_classes: usize) -> Result<TaskArrays> {
    let z: Vec<&[f32]> = logits.iter().map(|v| &v[..]).collect();
    let entropy = entropy_matrix(&z, n_classes)?;
    let lambda = lambda_from_entropy(&entropy, logits.len())?;
    Ok(TaskArrays {
        n_models: logits.len(),
        entropy,
        lambda,
    })
}

/// The heat map's row of one dataset: model name → `Σ_i λ_ij / N` over λ vectors `[N, M]`
/// (models in column order).
pub(crate) fn mean_lambda(lambda: &[f32], models: &[String]) -> BTreeMap<String, f64> {
    let m = models.len();
    let n = (lambda.len() / m.max(1)) as f64;
    models
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let sum: f64 = lambda.iter().skip(j).step_by(m).map(|&v| v as f64).sum();
            (name.clone(), sum / n)
        })
        .collect()
}

/// DaWin-sample's per-sample task weights `s·λ_ij` `[N, M]`.
pub(crate) fn task_weights(lambda: &[f32], m: usize, s: f32) -> Vec<f32> {
    lambda
        .chunks_exact(m)
        .flat_map(|l| coef::task_weights(l, s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Dirichlet-λ stage on two samples, two models, three classes, worked by hand.
    #[test]
    fn lambda_vectors_are_a_softmax_of_negative_entropies() {
        // Sample 0: model 0 uniform (H = ln 3), model 1 one-hot-like (logits 0, 0, ln 1e6 → p ≈
        // (1e-6, 1e-6, 1 − 2e-6), H ≈ 2.96e-5); sample 1: both uniform (λ = ½, ½).
        let big = 1e6f32.ln();
        let z0 = [0.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
        let z1 = [0.0f32, 0.0, big, 2.0, 2.0, 2.0];
        let arrays = task_arrays(&[z0.to_vec(), z1.to_vec()], 3).unwrap();
        let h1: f64 = {
            let s = 2.0 + 1e6f64;
            let (p, q) = (1.0 / s, 1e6 / s);
            -(2.0 * p * p.ln() + q * q.ln())
        };
        let h = [3f64.ln(), h1, 3f64.ln(), 3f64.ln()];
        for (g, w) in arrays.entropy.iter().zip(h) {
            assert!(
                (*g as f64 - w).abs() < 1e-5,
                "{:?} vs {h:?}",
                arrays.entropy
            );
        }
        // λ_0 = e^{−ln 3} / (e^{−ln 3} + e^{−h1}) = (1/3) / (1/3 + e^{−h1}).
        let l0 = (1.0 / 3.0) / (1.0 / 3.0 + (-h1).exp());
        let want = [l0, 1.0 - l0, 0.5, 0.5];
        for (g, w) in arrays.lambda.iter().zip(want) {
            assert!(
                (*g as f64 - w).abs() < 1e-6,
                "{:?} vs {want:?}",
                arrays.lambda
            );
        }
        assert_eq!(arrays.n_models, 2);
        // The heat map's row: the mean over the samples of each column.
        let names = ["a".to_string(), "b".to_string()];
        let row = mean_lambda(&arrays.lambda, &names);
        assert!((row["a"] - (l0 + 0.5) / 2.0).abs() < 1e-6);
        assert!((row["b"] - (1.5 - l0) / 2.0).abs() < 1e-6);
        // dawin-sample's weights: s·λ.
        let w = task_weights(&arrays.lambda, 2, 0.6);
        assert!((w[0] as f64 - 0.6 * l0).abs() < 1e-6 && (w[3] - 0.3).abs() < 1e-6);
    }
}
