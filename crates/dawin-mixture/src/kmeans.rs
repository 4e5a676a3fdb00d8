// Seeded k-means: greedy k-means++ initialisation and Lloyd iterations. (The algorithm is
// documented on `KMeans`, the type users see.)

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::error::{invalid, MixtureError, Result};

/// Configuration of [`KMeans::fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct KMeansConfig {
    /// Number of clusters K (≥ 1).
    pub k: usize,
    /// Maximum number of Lloyd iterations per initialisation (≥ 1). Default 300.
    pub max_iter: usize,
    /// Number of initialisations (seeds `seed`, `seed + 1`, …); the lowest inertia wins. Default 1.
    pub n_init: usize,
    /// Seed of the k-means++ initialisation. Default 0.
    pub seed: u64,
}

impl Default for KMeansConfig {
    fn default() -> Self {
        Self {
            k: 3,
            max_iter: 300,
            n_init: 1,
            seed: 0,
        }
    }
}

impl KMeansConfig {
    /// The default configuration with `k` clusters.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(MixtureError::ZeroComponents);
        }
        if self.max_iter == 0 {
            return Err(invalid("max_iter", 0, "at least one iteration is required"));
        }
        if self.n_init == 0 {
            return Err(invalid(
                "n_init",
                0,
                "at least one initialisation is required",
            ));
        }
        Ok(())
    }
}

/// Seeded k-means: greedy k-means++ initialisation and Lloyd iterations.
///
/// The algorithm is scikit-learn's `KMeans(n_init=1, init="k-means++")`, which the reference
/// uses to initialise the mixtures:
///
/// * **k-means++ (greedy).** The first centre is a sample drawn uniformly. Each further centre
///   is chosen among `2 + ⌊ln K⌋` candidates drawn with probability proportional to
///   `D(x)² = minⱼ ‖x − cⱼ‖²`, keeping the candidate that minimises the potential
///   `Σᵢ D(xᵢ)²` once added.
/// * **Lloyd.** Assign every sample to its nearest centre (ties to the lowest centre index),
///   move every centre to the mean of its samples, repeat until the assignment no longer changes
///   (or `max_iter`). A centre left without samples is moved onto the sample farthest from its
///   own centre (taken from a cluster with at least two samples), as scikit-learn does.
///
/// Unlike scikit-learn, which stops once the centres move less than a tolerance, Lloyd runs here
/// until the assignment is stable, so the result is a true fixed point.
///
/// **One dimension.** For `dim = 1` the same algorithm runs on the sorted samples with prefix
/// sums: a cluster is a contiguous range, its size, sum and sum of squares are two subtractions,
/// and the potential of a set of centres is `O(K log N)`. One Lloyd iteration then costs
/// `O(K log N)` instead of `O(N K)`, and the whole k-means costs little more than the sort.
/// Samples lying exactly on the midpoint of two centres go to the lower centre index, as in the
/// general path; the two paths give the same partition (tested) except for samples within
/// rounding of a midpoint.
///
/// Randomness: `rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed)`, a portable generator, so a
/// seed gives the same centres on every platform; initialisation `r` of `n_init` uses the seed
/// `seed + r` (wrapping).
#[derive(Clone, Copy, Debug)]
pub struct KMeans;

/// A fitted k-means clustering.
#[derive(Clone, Debug, PartialEq)]
pub struct KMeansFit {
    k: usize,
    dim: usize,
    centers: Vec<f64>,
    labels: Vec<usize>,
    inertia: f64,
    n_iter: usize,
    converged: bool,
}

impl KMeans {
    /// Clusters `data`, row-major with `dim` values per sample, into `config.k` clusters.
    ///
    /// Errors: `dim = 0`, a length that is not a multiple of `dim`, no samples, fewer samples
    /// than clusters, a NaN or infinite value, an invalid configuration.
    ///
    /// ```
    /// use dawin_mixture::{KMeans, KMeansConfig};
    /// let x = [0.1, 0.12, 0.11, 0.9, 0.88, 0.91];
    /// let fit = KMeans::fit(&x, 1, &KMeansConfig::new(2)).unwrap();
    /// assert_eq!(fit.labels()[0], fit.labels()[2]);
    /// assert_ne!(fit.labels()[0], fit.labels()[3]);
    /// ```
    pub fn fit<T: Copy + Into<f64>>(
        data: &[T],
        dim: usize,
        config: &KMeansConfig,
    ) -> Result<KMeansFit> {
        config.validate()?;
        if dim == 0 {
            return Err(invalid("dim", 0, "must be at least 1"));
        }
        if data.is_empty() {
            return Err(MixtureError::Empty { what: "data" });
        }
        if !data.len().is_multiple_of(dim) {
            return Err(MixtureError::Shape {
                what: "data",
                len: data.len(),
                dim,
            });
        }
        let x = finite_values(data)?;
        let n = x.len() / dim;
        if n < config.k {
            return Err(MixtureError::TooFewSamples { n, k: config.k });
        }
        let mut best: Option<KMeansFit> = None;
        if dim == 1 {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&i, &j| x[i].total_cmp(&x[j]).then(i.cmp(&j)));
            let sorted = Sorted1d::new(order.iter().map(|&i| x[i]).collect());
            for r in 0..config.n_init {
                let part = kmeans_1d(
                    &sorted,
                    config.k,
                    config.seed.wrapping_add(r as u64),
                    config.max_iter,
                );
                let mut labels = vec![0; n];
                for (c, &(lo, hi)) in part.ranges.iter().enumerate() {
                    for &i in &order[lo..hi] {
                        labels[i] = c;
                    }
                }
                let fit = KMeansFit {
                    k: config.k,
                    dim,
                    centers: part.centers,
                    labels,
                    inertia: part.inertia,
                    n_iter: part.n_iter,
                    converged: part.converged,
                };
                if best.as_ref().is_none_or(|b| fit.inertia < b.inertia) {
                    best = Some(fit);
                }
            }
        } else {
            for r in 0..config.n_init {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed.wrapping_add(r as u64));
                let init = kmeanspp(&x, dim, config.k, &mut rng);
                let fit = lloyd(&x, dim, init, config.max_iter);
                if best.as_ref().is_none_or(|b| fit.inertia < b.inertia) {
                    best = Some(fit);
                }
            }
        }
        Ok(best.expect("n_init >= 1"))
    }
}

impl KMeansFit {
    /// Number of clusters K.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Dimension of the samples.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Cluster centres, row-major `[K, dim]`.
    pub fn centers(&self) -> &[f64] {
        &self.centers
    }

    /// Centre of cluster `c`.
    pub fn center(&self, c: usize) -> &[f64] {
        &self.centers[c * self.dim..(c + 1) * self.dim]
    }

    /// Cluster of every fitted sample.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Sum of squared distances of the samples to their centres.
    pub fn inertia(&self) -> f64 {
        self.inertia
    }

    /// Lloyd iterations of the returned initialisation.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Whether the assignment became stable before `max_iter`.
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// Nearest centre (ties to the lowest index) of every sample of `data` (row-major, `dim`).
    pub fn predict<T: Copy + Into<f64>>(&self, data: &[T]) -> Result<Vec<usize>> {
        if !data.len().is_multiple_of(self.dim) {
            return Err(MixtureError::Shape {
                what: "data",
                len: data.len(),
                dim: self.dim,
            });
        }
        let x = finite_values(data)?;
        Ok(x.chunks_exact(self.dim)
            .map(|row| nearest(row, &self.centers, self.dim).0)
            .collect())
    }
}

fn finite_values<T: Copy + Into<f64>>(data: &[T]) -> Result<Vec<f64>> {
    data.iter()
        .enumerate()
        .map(|(index, &v)| {
            let value: f64 = v.into();
            if value.is_finite() {
                Ok(value)
            } else {
                Err(MixtureError::NonFinite { index, value })
            }
        })
        .collect()
}

#[inline]
fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Nearest centre and its squared distance; ties go to the lowest index.
fn nearest(row: &[f64], centers: &[f64], dim: usize) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (c, center) in centers.chunks_exact(dim).enumerate() {
        let d = dist2(row, center);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

fn n_local_trials(k: usize) -> usize {
    2 + (k as f64).ln().floor() as usize
}

/// Index of the first sample whose cumulative weight exceeds `target`; the last sample with
/// positive weight when rounding leaves `target` at or above the total (the last sample when
/// all weights are 0).
fn sample_by_cumsum(cumsum: &[f64], target: f64) -> usize {
    let i = cumsum.partition_point(|&c| c <= target);
    if i < cumsum.len() {
        return i;
    }
    let total = *cumsum.last().expect("non-empty");
    let j = cumsum.partition_point(|&c| c < total);
    j.min(cumsum.len() - 1)
}

/// Greedy k-means++ in `dim` dimensions.
fn kmeanspp(x: &[f64], dim: usize, k: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
    let n = x.len() / dim;
    let mut centers = Vec::with_capacity(k * dim);
    let first = rng.random_range(0..n);
    centers.extend_from_slice(&x[first * dim..(first + 1) * dim]);
    let mut closest: Vec<f64> = x
        .chunks_exact(dim)
        .map(|row| dist2(row, &centers[..dim]))
        .collect();
    let mut pot: f64 = closest.iter().sum();
    let mut cumsum = vec![0.0; n];
    let mut cand_d = vec![0.0; n];
    let mut best_d = vec![0.0; n];
    for _ in 1..k {
        let mut acc = 0.0;
        for (c, &d) in cumsum.iter_mut().zip(&closest) {
            acc += d;
            *c = acc;
        }
        let mut best: Option<(usize, f64)> = None;
        for _ in 0..n_local_trials(k) {
            let target = rng.random::<f64>() * pot;
            let idx = sample_by_cumsum(&cumsum, target);
            let cand = &x[idx * dim..(idx + 1) * dim];
            let mut p = 0.0;
            for ((d, row), &old) in cand_d.iter_mut().zip(x.chunks_exact(dim)).zip(&closest) {
                *d = dist2(row, cand).min(old);
                p += *d;
            }
            if best.is_none_or(|(_, bp)| p < bp) {
                best = Some((idx, p));
                best_d.copy_from_slice(&cand_d);
            }
        }
        let (idx, p) = best.expect("at least two trials");
        centers.extend_from_slice(&x[idx * dim..(idx + 1) * dim]);
        std::mem::swap(&mut closest, &mut best_d);
        pot = p;
    }
    centers
}

/// Lloyd iterations from `centers` (general dimension).
fn lloyd(x: &[f64], dim: usize, mut centers: Vec<f64>, max_iter: usize) -> KMeansFit {
    let n = x.len() / dim;
    let k = centers.len() / dim;
    let assign = |centers: &[f64], labels: &mut Vec<usize>, dists: &mut Vec<f64>| {
        labels.clear();
        dists.clear();
        for row in x.chunks_exact(dim) {
            let (c, d) = nearest(row, centers, dim);
            labels.push(c);
            dists.push(d);
        }
    };
    let mut labels = Vec::with_capacity(n);
    let mut dists = Vec::with_capacity(n);
    assign(&centers, &mut labels, &mut dists);
    let mut new_labels = Vec::with_capacity(n);
    let mut n_iter = 0;
    let mut converged = false;
    let mut counts = vec![0usize; k];
    let mut sums = vec![0.0; k * dim];
    let mut first = vec![usize::MAX; k];
    let mut assigned = Vec::with_capacity(n);
    for it in 1..=max_iter {
        n_iter = it;
        assigned.clone_from(&labels);
        // Relocate empty clusters onto the farthest samples (from clusters with ≥ 2 samples).
        counts.iter_mut().for_each(|c| *c = 0);
        for &l in &labels {
            counts[l] += 1;
        }
        for c in 0..k {
            if counts[c] > 0 {
                continue;
            }
            let mut far: Option<(usize, f64)> = None;
            for (i, (&l, &d)) in labels.iter().zip(&dists).enumerate() {
                if counts[l] >= 2 && far.is_none_or(|(_, fd)| d > fd) {
                    far = Some((i, d));
                }
            }
            if let Some((i, _)) = far {
                counts[labels[i]] -= 1;
                counts[c] = 1;
                labels[i] = c;
                dists[i] = 0.0;
            }
        }
        // Update: centre = first sample + mean offset from it, so that a cluster of equal
        // samples gets exactly their value.
        sums.iter_mut().for_each(|s| *s = 0.0);
        first.iter_mut().for_each(|f| *f = usize::MAX);
        for (i, (row, &l)) in x.chunks_exact(dim).zip(&labels).enumerate() {
            if first[l] == usize::MAX {
                first[l] = i;
            }
            let origin = &x[first[l] * dim..(first[l] + 1) * dim];
            for ((s, &v), &o) in sums[l * dim..(l + 1) * dim].iter_mut().zip(row).zip(origin) {
                *s += v - o;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                let cnt = counts[c] as f64;
                let origin = &x[first[c] * dim..(first[c] + 1) * dim];
                for ((dst, &s), &o) in centers[c * dim..(c + 1) * dim]
                    .iter_mut()
                    .zip(&sums[c * dim..(c + 1) * dim])
                    .zip(origin)
                {
                    *dst = o + s / cnt;
                }
            }
        }
        // Assign.
        assign(&centers, &mut new_labels, &mut dists);
        let same = new_labels == assigned;
        std::mem::swap(&mut labels, &mut new_labels);
        if same {
            converged = true;
            break;
        }
    }
    let inertia = dists.iter().sum();
    KMeansFit {
        k,
        dim,
        centers,
        labels,
        inertia,
        n_iter,
        converged,
    }
}

// ---------------------------------------------------------------------------------------------
// One dimension, sorted samples.
// ---------------------------------------------------------------------------------------------

/// Sorted samples with prefix sums of x and x².
pub(crate) struct Sorted1d {
    pub xs: Vec<f64>,
    p1: Vec<f64>,
    p2: Vec<f64>,
}

impl Sorted1d {
    /// `xs` must be sorted ascending.
    pub fn new(xs: Vec<f64>) -> Self {
        debug_assert!(xs.windows(2).all(|w| w[0] <= w[1]));
        let mut p1 = Vec::with_capacity(xs.len() + 1);
        let mut p2 = Vec::with_capacity(xs.len() + 1);
        let (mut a, mut b) = (0.0, 0.0);
        p1.push(0.0);
        p2.push(0.0);
        for &x in &xs {
            a += x;
            b += x * x;
            p1.push(a);
            p2.push(b);
        }
        Self { xs, p1, p2 }
    }

    pub fn len(&self) -> usize {
        self.xs.len()
    }

    /// (Σx, Σx²) over sorted indices `lo..hi`.
    #[inline]
    pub fn sums(&self, lo: usize, hi: usize) -> (f64, f64) {
        (self.p1[hi] - self.p1[lo], self.p2[hi] - self.p2[lo])
    }

    /// Σ (x − c)² over `lo..hi`, clamped at 0 against rounding.
    #[inline]
    fn pot(&self, lo: usize, hi: usize, c: f64) -> f64 {
        let (s1, s2) = self.sums(lo, hi);
        (s2 - 2.0 * c * s1 + (hi - lo) as f64 * c * c).max(0.0)
    }

    /// First index with `x > v`.
    #[inline]
    fn upper_bound(&self, v: f64) -> usize {
        self.xs.partition_point(|&x| x <= v)
    }

    /// First index with `x ≥ v`.
    #[inline]
    fn lower_bound(&self, v: f64) -> usize {
        self.xs.partition_point(|&x| x < v)
    }

    /// Segments of the nearest-centre partition for a set of centre values (ties irrelevant):
    /// `(lo, hi, centre)` in ascending order of centre.
    fn segments(&self, centers: &[f64], out: &mut Vec<(usize, usize, f64)>) {
        let mut cs: Vec<f64> = centers.to_vec();
        cs.sort_by(f64::total_cmp);
        cs.dedup();
        out.clear();
        let mut lo = 0;
        for j in 0..cs.len() {
            let hi = if j + 1 < cs.len() {
                self.upper_bound(0.5 * (cs[j] + cs[j + 1]))
            } else {
                self.len()
            };
            out.push((lo, hi.max(lo), cs[j]));
            lo = hi.max(lo);
        }
    }

    fn potential(&self, segs: &[(usize, usize, f64)]) -> f64 {
        segs.iter().map(|&(lo, hi, c)| self.pot(lo, hi, c)).sum()
    }

    /// First sorted index whose cumulative D² exceeds `target` (see [`sample_by_cumsum`]).
    fn sample(&self, segs: &[(usize, usize, f64)], target: f64) -> usize {
        let mut acc = 0.0;
        let mut last_positive = None;
        for &(lo, hi, c) in segs {
            let p = self.pot(lo, hi, c);
            if p > 0.0 {
                last_positive = Some((lo, hi, c));
            }
            if acc + p > target {
                // smallest i in lo..hi with acc + pot(lo, i + 1) > target
                let (mut a, mut b) = (lo, hi);
                while a < b {
                    let mid = a + (b - a) / 2;
                    if acc + self.pot(lo, mid + 1, c) > target {
                        b = mid;
                    } else {
                        a = mid + 1;
                    }
                }
                return a.min(hi - 1);
            }
            acc += p;
        }
        match last_positive {
            // The last sample of the last segment with positive weight: the farthest from its
            // centre on one side.
            Some((lo, hi, c)) => {
                if (self.xs[hi - 1] - c).abs() >= (self.xs[lo] - c).abs() {
                    hi - 1
                } else {
                    lo
                }
            }
            None => self.len() - 1,
        }
    }
}

/// Result of 1-D k-means: centres by cluster index and each cluster's sorted index range.
pub(crate) struct Partition1d {
    pub centers: Vec<f64>,
    pub ranges: Vec<(usize, usize)>,
    pub inertia: f64,
    pub n_iter: usize,
    pub converged: bool,
}

/// Greedy k-means++ on sorted samples (same distribution as [`kmeanspp`] in sorted order).
fn kmeanspp_1d(s: &Sorted1d, k: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
    let mut centers = vec![s.xs[rng.random_range(0..s.len())]];
    let mut segs = Vec::with_capacity(k);
    s.segments(&centers, &mut segs);
    let mut pot = s.potential(&segs);
    for _ in 1..k {
        let mut best: Option<(f64, f64)> = None;
        s.segments(&centers, &mut segs);
        let base = segs.clone();
        for _ in 0..n_local_trials(k) {
            let target = rng.random::<f64>() * pot;
            let cand = s.xs[s.sample(&base, target)];
            centers.push(cand);
            s.segments(&centers, &mut segs);
            let p = s.potential(&segs);
            centers.pop();
            if best.is_none_or(|(_, bp)| p < bp) {
                best = Some((cand, p));
            }
        }
        let (cand, p) = best.expect("at least two trials");
        centers.push(cand);
        pot = p;
    }
    centers
}

/// Nearest-centre ranges by cluster index; equal centres leave all their samples to the lowest
/// index, midpoint ties go to the lower index.
fn assign_1d(s: &Sorted1d, centers: &[f64]) -> Vec<(usize, usize)> {
    let k = centers.len();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| centers[i].total_cmp(&centers[j]).then(i.cmp(&j)));
    // Representatives: the lowest index of each distinct value (the first in `order`).
    let mut reps: Vec<usize> = Vec::with_capacity(k);
    for &c in &order {
        if reps.last().is_none_or(|&r| centers[r] != centers[c]) {
            reps.push(c);
        }
    }
    let mut ranges = vec![(0, 0); k];
    let mut lo = 0;
    for j in 0..reps.len() {
        let p = reps[j];
        let hi = if j + 1 < reps.len() {
            let q = reps[j + 1];
            let mid = 0.5 * (centers[p] + centers[q]);
            if p < q {
                s.upper_bound(mid)
            } else {
                s.lower_bound(mid)
            }
        } else {
            s.len()
        };
        let hi = hi.max(lo);
        ranges[p] = (lo, hi);
        lo = hi;
    }
    ranges
}

/// Lloyd on sorted samples.
fn lloyd_1d(s: &Sorted1d, mut centers: Vec<f64>, max_iter: usize) -> Partition1d {
    let k = centers.len();
    let mut ranges = assign_1d(s, &centers);
    let mut n_iter = 0;
    let mut converged = false;
    for it in 1..=max_iter {
        n_iter = it;
        let assigned = ranges.clone();
        // Relocate empty clusters onto the farthest samples (distance to their old centre).
        for c in 0..k {
            if ranges[c].0 < ranges[c].1 {
                continue;
            }
            let mut far: Option<(usize, usize, f64)> = None; // (cluster, sorted index, distance)
            for (j, &(lo, hi)) in ranges.iter().enumerate() {
                if hi - lo < 2 {
                    continue;
                }
                for i in [lo, hi - 1] {
                    let d = (s.xs[i] - centers[j]).abs();
                    let better = match far {
                        None => true,
                        Some((_, fi, fd)) => d > fd || (d == fd && i < fi),
                    };
                    if better {
                        far = Some((j, i, d));
                    }
                }
            }
            if let Some((j, i, _)) = far {
                if i == ranges[j].0 {
                    ranges[j].0 += 1;
                } else {
                    ranges[j].1 -= 1;
                }
                ranges[c] = (i, i + 1);
            }
        }
        for (c, &(lo, hi)) in ranges.iter().enumerate() {
            if lo < hi {
                // The clamp makes a range of equal samples have exactly their value as centre
                // (prefix-sum rounding could otherwise make equal centres differ and oscillate).
                centers[c] = (s.sums(lo, hi).0 / (hi - lo) as f64).clamp(s.xs[lo], s.xs[hi - 1]);
            }
        }
        let new_ranges = assign_1d(s, &centers);
        let same = new_ranges == assigned;
        ranges = new_ranges;
        if same {
            converged = true;
            break;
        }
    }
    let inertia = ranges
        .iter()
        .zip(&centers)
        .map(|(&(lo, hi), &c)| s.pot(lo, hi, c))
        .sum();
    Partition1d {
        centers,
        ranges,
        inertia,
        n_iter,
        converged,
    }
}

/// One seeded 1-D k-means run (k-means++ then Lloyd).
pub(crate) fn kmeans_1d(s: &Sorted1d, k: usize, seed: u64, max_iter: usize) -> Partition1d {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let init = kmeanspp_1d(s, k, &mut rng);
    lloyd_1d(s, init, max_iter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg_data(n: usize, seed: u64) -> Vec<f64> {
        let mut st = seed;
        (0..n)
            .map(|i| {
                st = st
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (st >> 11) as f64 / (1u64 << 53) as f64;
                // three bumps
                match i % 3 {
                    0 => 0.2 + 0.1 * u,
                    1 => 0.5 + 0.05 * u,
                    _ => 0.75 + 0.2 * u * u,
                }
            })
            .collect()
    }

    #[test]
    fn sorted_lloyd_matches_general_lloyd_from_the_same_centres() {
        for (n, k, seed) in [(500, 3, 1), (1000, 5, 2), (257, 2, 3), (64, 7, 4)] {
            let mut x = lcg_data(n, seed);
            x.sort_by(f64::total_cmp);
            let s = Sorted1d::new(x.clone());
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let init = kmeanspp_1d(&s, k, &mut rng);
            let a = lloyd_1d(&s, init.clone(), 300);
            let b = lloyd(&x, 1, init, 300);
            let mut labels_a = vec![usize::MAX; n];
            for (c, &(lo, hi)) in a.ranges.iter().enumerate() {
                labels_a[lo..hi].iter_mut().for_each(|l| *l = c);
            }
            assert_eq!(labels_a, b.labels, "n = {n}, k = {k}");
            assert_eq!(a.n_iter, b.n_iter);
            for c in 0..k {
                assert!((a.centers[c] - b.centers[c]).abs() < 1e-12);
            }
            assert!((a.inertia - b.inertia).abs() < 1e-9 * b.inertia.max(1e-9));
        }
    }

    #[test]
    fn kmeanspp_1d_potential_matches_brute_force() {
        let mut x = lcg_data(300, 9);
        x.sort_by(f64::total_cmp);
        let s = Sorted1d::new(x.clone());
        let centers = [0.21, 0.52, 0.8, 0.52];
        let mut segs = Vec::new();
        s.segments(&centers, &mut segs);
        let brute: f64 = x
            .iter()
            .map(|&v| {
                centers
                    .iter()
                    .map(|&c| (v - c) * (v - c))
                    .fold(f64::INFINITY, f64::min)
            })
            .sum();
        assert!((s.potential(&segs) - brute).abs() < 1e-10);
        // Sampling by cumulative D² picks the same index as a brute-force scan.
        let d2: Vec<f64> = x
            .iter()
            .map(|&v| {
                centers
                    .iter()
                    .map(|&c| (v - c) * (v - c))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        let mut cum = Vec::new();
        let mut acc = 0.0;
        for d in &d2 {
            acc += d;
            cum.push(acc);
        }
        for t in [0.0, 0.1, 0.37, 0.5, 0.93] {
            let target = t * brute;
            let want = sample_by_cumsum(&cum, target);
            let got = s.sample(&segs, target);
            assert!(want.abs_diff(got) <= 1, "t = {t}: {got} vs {want}");
        }
    }

    #[test]
    fn equal_values_and_duplicates() {
        let x = vec![0.4; 10];
        let s = Sorted1d::new(x);
        let p = kmeans_1d(&s, 3, 0, 300);
        assert!(p.converged, "{:?} {:?} {}", p.centers, p.ranges, p.n_iter);
        assert_eq!(p.ranges.iter().map(|r| r.1 - r.0).sum::<usize>(), 10);
        assert!(p.centers.iter().all(|&c| c == 0.4));
        assert!(p.inertia < 1e-12);
    }

    #[test]
    fn empty_cluster_is_relocated() {
        // Centres chosen so that the middle cluster loses all its samples after one update.
        let x = vec![-0.01, 0.0, 1.0, 1.01];
        let s = Sorted1d::new(x.clone());
        let a = lloyd_1d(&s, vec![-0.01, 0.5, 1.01], 100);
        let b = lloyd(&x, 1, vec![-0.01, 0.5, 1.01], 100);
        assert!(a.ranges.iter().all(|r| r.1 > r.0));
        let mut counts = [0; 3];
        for &l in &b.labels {
            counts[l] += 1;
        }
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    }
}
