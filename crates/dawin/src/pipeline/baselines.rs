//! The methods DaWin is compared against in the two-model table, and the oracles:
//!
//! * ZS and FT: `argmax z_0`, `argmax z_1`;
//! * WiSE-FT: one merge `θ(λ) = (1 − λ)θ0 + λθ1`, λ picked on ID validation from the grid
//!   {0, 0.1, …, 1} ([`WiseGrid`]); the same grid on each test set gives the ID-vs-OOD curve and
//!   the domain-wise oracle `λ*(X)` (best grid point on the test set itself);
//! * output ensemble: `argmax ((1 − a) p_0 + a p_1)`, `a` picked on ID validation
//!   ([`pick_ensemble`]);
//! * dynamic classifier selection (DCS): per sample, the prediction of the model of lower
//!   entropy ([`dcs`]);
//! * dynamic output ensemble (DOE): `argmax ((1 − λ(x)) p_0 + λ(x) p_1)` ([`mix_probs`]).
use super::logits::logits_of;
use super::report::accuracy;
use crate::data::Dataset;
use crate::error::Result;
use crate::model::Interpolate;
use dawin_core::stats;

/// The grid {0, 0.1, …, 1}.
pub fn grid() -> Vec<f32> {
    (0..=10).map(|g| g as f32 / 10.0).collect()
}

/// First index of the maximum (ties go to the earlier grid point).
pub(crate) fn argmax_first(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// `(1 − w_i) p_0 + w_i p_1` row by row (`c` classes), `w_i = w(i)`.
pub(crate) fn mix_probs(p0: &[f32], p1: &[f32], c: usize, w: impl Fn(usize) -> f32) -> Vec<f32> {
    p0.iter()
        .zip(p1)
        .enumerate()
        .map(|(j, (a, b))| {
            let l = w(j / c);
            (1.0 - l) * a + l * b
        })
        .collect()
}

/// WiSE-FT's merged models `θ(g) = (1 − g)θ0 + gθ1` on the grid.
pub(crate) struct WiseGrid<'a, M> {
    /// θ0.
    pub m0: &'a M,
    /// θ1.
    pub m1: &'a M,
    /// Samples per forward.
    pub batch: usize,
    /// Progress bars.
    pub progress: bool,
}

impl<M: Interpolate> WiseGrid<'_, M> {
    /// Logits of `θ(g)` on `d` (restricted to its class subset): `z.0` at g = 0, `z.1` at g = 1
    /// (θ0's and θ1's, already computed), else one merge and a forward.
    pub fn logits(&self, d: &dyn Dataset, z: (&[f32], &[f32]), g: f32) -> Result<Vec<f32>> {
        if g == 0.0 {
            return Ok(z.0.to_vec());
        }
        if g == 1.0 {
            return Ok(z.1.to_vec());
        }
        let merged = self.m0.interpolate(self.m1, g)?;
        logits_of(&merged, &format!("θ({g:.1})"), d, self.batch, self.progress)
    }

    /// Predictions of every grid point on `d` (`c` classes) and their accuracies.
    pub fn on(&self, d: &dyn Dataset, z: (&[f32], &[f32]), c: usize) -> Result<GridResults> {
        let mut r = GridResults::default();
        for g in grid() {
            let pred = stats::argmax(&self.logits(d, z, g)?, c)?;
            r.acc.push(accuracy(&pred, d.labels()));
            r.pred.push(pred);
        }
        Ok(r)
    }

    /// WiSE-FT's λ: the grid point of best accuracy on the validation set `val` (`c` classes).
    pub fn pick(&self, val: &dyn Dataset, val_z: (&[f32], &[f32]), c: usize) -> Result<f32> {
        let accs: Vec<f64> = grid()
            .into_iter()
            .map(|g| {
                Ok(accuracy(
                    &stats::argmax(&self.logits(val, val_z, g)?, c)?,
                    val.labels(),
                ))
            })
            .collect::<Result<_>>()?;
        Ok(grid()[argmax_first(&accs)])
    }
}

/// The grid evaluated on one dataset: accuracy and predictions per grid point (empty when not
/// evaluated).
#[derive(Default)]
pub(crate) struct GridResults {
    /// Accuracy (%) per grid point.
    pub acc: Vec<f64>,
    /// Predictions per grid point.
    pub pred: Vec<Vec<u32>>,
}

impl GridResults {
    /// The predictions of `θ(g)`: from the grid when evaluated, else computed.
    pub fn predictions<M: Interpolate>(
        &self,
        wise: &WiseGrid<'_, M>,
        d: &dyn Dataset,
        z: (&[f32], &[f32]),
        c: usize,
        g: f32,
    ) -> Result<Vec<u32>> {
        match grid()
            .iter()
            .position(|&x| x == g)
            .and_then(|i| self.pred.get(i))
        {
            Some(p) => Ok(p.clone()),
            None => Ok(stats::argmax(&wise.logits(d, z, g)?, c)?),
        }
    }

    /// The domain-wise oracle's λ*(X): the grid point of best accuracy on this dataset.
    pub fn best(&self) -> f32 {
        grid()[argmax_first(&self.acc)]
    }
}

/// The output ensemble's weight: the grid point `a` of best validation accuracy of
/// `argmax ((1 − a) p_0 + a p_1)`, `p_j = softmax(z_j / T_j)`.
pub(crate) fn pick_ensemble(
    val_z: (&[f32], &[f32]),
    c: usize,
    (t0, t1): (f32, f32),
    labels: &[i64],
) -> Result<f32> {
    let p0 = stats::softmax(val_z.0, c, t0)?;
    let p1 = stats::softmax(val_z.1, c, t1)?;
    let accs: Vec<f64> = grid()
        .into_iter()
        .map(|a| {
            Ok(accuracy(
                &stats::argmax(&mix_probs(&p0, &p1, c, |_| a), c)?,
                labels,
            ))
        })
        .collect::<Result<_>>()?;
    Ok(grid()[argmax_first(&accs)])
}

/// Dynamic classifier selection: per sample, θ1's prediction where `H_1 < H_0`, else θ0's.
pub(crate) fn dcs(z: (&[f32], &[f32]), h0: &[f32], h1: &[f32], c: usize) -> Result<Vec<u32>> {
    let a0 = stats::argmax(z.0, c)?;
    let a1 = stats::argmax(z.1, c)?;
    Ok((0..a0.len())
        .map(|i| if h1[i] < h0[i] { a1[i] } else { a0[i] })
        .collect())
}
