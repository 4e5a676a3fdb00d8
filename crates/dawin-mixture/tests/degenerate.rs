//! Degenerate and invalid input: a clear error naming the argument, or a documented answer
//! without NaN.

use dawin_mixture::{
    fit_batchwise, BetaMixture, BetaMixtureConfig, BetaMixtureFit, DirichletMixture,
    DirichletMixtureConfig, DirichletMixtureFit, KMeans, KMeansConfig, MStep, MixtureError,
};

fn assert_sane_beta(fit: &BetaMixtureFit) {
    let k = fit.k();
    assert_eq!(fit.weights().len(), k);
    assert!((fit.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
    for c in 0..k {
        assert!(fit.weights()[c].is_finite() && fit.weights()[c] >= 0.0);
        assert!(
            fit.a()[c].is_finite() && fit.a()[c] > 0.0,
            "a = {}",
            fit.a()[c]
        );
        assert!(
            fit.b()[c].is_finite() && fit.b()[c] > 0.0,
            "b = {}",
            fit.b()[c]
        );
        assert!(fit.means()[c] > 0.0 && fit.means()[c] < 1.0);
    }
    assert!(
        fit.means().windows(2).all(|w| w[0] <= w[1]),
        "sorted by mean"
    );
    assert!(fit.mean_log_likelihood().is_finite());
}

fn assert_sane_dirichlet(fit: &DirichletMixtureFit) {
    assert!((fit.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(fit.alphas().iter().all(|a| a.is_finite() && *a > 0.0));
    assert!(fit.means().iter().all(|m| m.is_finite()));
    assert!(fit.mean_log_likelihood().is_finite());
}

#[test]
fn zero_components_is_an_error() {
    let x = [0.2, 0.4];
    assert_eq!(
        BetaMixture::fit(&x, &BetaMixtureConfig::new(0)),
        Err(MixtureError::ZeroComponents)
    );
    assert_eq!(
        DirichletMixture::fit(&[0.5, 0.5], 2, &DirichletMixtureConfig::new(0)),
        Err(MixtureError::ZeroComponents)
    );
    assert_eq!(
        KMeans::fit(&x, 1, &KMeansConfig::new(0)),
        Err(MixtureError::ZeroComponents)
    );
    assert_eq!(
        MixtureError::ZeroComponents.to_string(),
        "k = 0: at least one component is required"
    );
}

#[test]
fn empty_input_is_an_error() {
    let empty: [f64; 0] = [];
    let err = BetaMixture::fit(&empty, &BetaMixtureConfig::new(2)).unwrap_err();
    assert_eq!(err, MixtureError::Empty { what: "values" });
    assert!(err.to_string().contains("values is empty"));
    assert_eq!(
        DirichletMixture::fit(&empty, 3, &DirichletMixtureConfig::default()),
        Err(MixtureError::Empty { what: "rows" })
    );
    assert_eq!(
        KMeans::fit(&empty, 2, &KMeansConfig::new(1)),
        Err(MixtureError::Empty { what: "data" })
    );
    assert!(fit_batchwise(&empty, 10, &BetaMixtureConfig::default()).is_err());
}

#[test]
fn fewer_samples_than_components_is_an_error() {
    let err = BetaMixture::fit(&[0.1, 0.9], &BetaMixtureConfig::new(3)).unwrap_err();
    assert_eq!(err, MixtureError::TooFewSamples { n: 2, k: 3 });
    assert_eq!(
        err.to_string(),
        "n = 2 samples is smaller than k = 3 components"
    );
    assert_eq!(
        DirichletMixture::fit(&[0.5, 0.5], 2, &DirichletMixtureConfig::new(2)),
        Err(MixtureError::TooFewSamples { n: 1, k: 2 })
    );
    // N = K is allowed: every sample gets its own component.
    let fit = BetaMixture::fit(&[0.1, 0.5, 0.9], &BetaMixtureConfig::new(3)).unwrap();
    assert_sane_beta(&fit);
    let lambdas = fit.lambdas(&[0.1, 0.5, 0.9]).unwrap();
    for (l, v) in lambdas.iter().zip([0.1, 0.5, 0.9]) {
        assert!((l - v).abs() < 1e-9, "{l} vs {v}");
    }
}

#[test]
fn nan_and_infinite_values_are_errors_naming_the_index() {
    let mut x = vec![0.5f64; 40];
    x[17] = f64::NAN;
    let err = BetaMixture::fit(&x, &BetaMixtureConfig::new(2)).unwrap_err();
    assert!(matches!(err, MixtureError::NonFinite { index: 17, .. }));
    assert_eq!(err.to_string(), "value at index 17 is NaN");
    x[17] = f64::INFINITY;
    let err = BetaMixture::fit(&x, &BetaMixtureConfig::new(2)).unwrap_err();
    assert_eq!(err.to_string(), "value at index 17 is inf");
    // f32 NaN, batch-wise (global index), predict on a fitted model, k-means, Dirichlet.
    let mut y = vec![0.25f32; 30];
    y[29] = f32::NAN;
    assert!(matches!(
        fit_batchwise(&y, 8, &BetaMixtureConfig::new(2)),
        Err(MixtureError::NonFinite { index: 29, .. })
    ));
    let fit = BetaMixture::fit(&[0.2, 0.3, 0.7, 0.8], &BetaMixtureConfig::new(2)).unwrap();
    assert!(matches!(
        fit.predict(&y),
        Err(MixtureError::NonFinite { index: 29, .. })
    ));
    assert!(matches!(
        KMeans::fit(&[1.0, f64::NEG_INFINITY], 1, &KMeansConfig::new(1)),
        Err(MixtureError::NonFinite { index: 1, .. })
    ));
    let rows = [0.5, 0.5, f64::NAN, 0.5];
    assert!(matches!(
        DirichletMixture::fit(&rows, 2, &DirichletMixtureConfig::default()),
        Err(MixtureError::NonFinite { index: 2, .. })
    ));
}

#[test]
fn values_outside_the_unit_interval_are_errors() {
    let err = BetaMixture::fit(&[0.2, -0.1, 0.5], &BetaMixtureConfig::new(2)).unwrap_err();
    assert_eq!(
        err,
        MixtureError::OutOfRange {
            index: 1,
            value: -0.1
        }
    );
    assert_eq!(err.to_string(), "value at index 1 is -0.1, outside [0, 1]");
    assert!(BetaMixture::fit(&[0.2, 1.5, 0.5], &BetaMixtureConfig::new(2)).is_err());
}

#[test]
fn all_values_equal_give_components_at_that_value() {
    for k in 1..=4 {
        let x = vec![0.3; 100];
        let fit = BetaMixture::fit(&x, &BetaMixtureConfig::new(k)).unwrap();
        assert_sane_beta(&fit);
        // One component holds the data at its value; the surplus ones carry negligible weight
        // and sit near the value (their mean is Σγλ / (Σγ + 10ε) with Σγ ≈ 10εN, as in the
        // reference).
        let main = (0..k)
            .max_by(|&i, &j| fit.weights()[i].total_cmp(&fit.weights()[j]))
            .unwrap();
        assert!(fit.weights()[main] > 1.0 - 1e-12);
        assert!(
            (fit.means()[main] - 0.3).abs() < 1e-12,
            "k = {k}: {:?}",
            fit.means()
        );
        for c in 0..k {
            assert!(
                (fit.means()[c] - 0.3).abs() < 0.01,
                "k = {k}: {:?}",
                fit.means()
            );
        }
        for l in fit.lambdas(&x).unwrap() {
            assert!((l - 0.3).abs() < 1e-12);
        }
        let proba = fit.predict_proba(&x).unwrap();
        assert!(proba.iter().all(|p| p.is_finite()));
    }
}

#[test]
fn exact_zeros_and_ones_are_clamped() {
    // The reference takes ln 0 here; we clamp to [1e-6, 1 − 1e-6].
    let mut x = vec![0.0f64; 50];
    x.extend(vec![1.0; 50]);
    let fit = BetaMixture::fit(&x, &BetaMixtureConfig::new(2)).unwrap();
    assert_sane_beta(&fit);
    assert!((fit.means()[0] - 1e-6).abs() < 1e-12);
    assert!((fit.means()[1] - (1.0 - 1e-6)).abs() < 1e-12);
    assert!((fit.weights()[0] - 0.5).abs() < 1e-9);
    assert_eq!(fit.predict(&[0.0, 1.0]).unwrap(), vec![0, 1]);
    // Mixed with interior values, in f32 as an underflowing expertise ratio would give them.
    let mut y: Vec<f32> = (0..300).map(|i| 0.2 + 0.6 * (i as f32 / 300.0)).collect();
    y.extend([0.0f32, 1.0, 0.0, 1.0, 0.0]);
    let fit = BetaMixture::fit(&y, &BetaMixtureConfig::new(3)).unwrap();
    assert_sane_beta(&fit);
    assert!(fit.lambdas(&y).unwrap().iter().all(|l| l.is_finite()));
    // A coarser clamp moves the boundary values accordingly.
    let config = BetaMixtureConfig {
        clamp_eps: 1e-3,
        ..BetaMixtureConfig::new(2)
    };
    let fit = BetaMixture::fit(&x, &config).unwrap();
    assert!((fit.means()[0] - 1e-3).abs() < 1e-12);
    assert_eq!(fit.clamp_eps(), 1e-3);
}

#[test]
fn invalid_configurations_name_the_field() {
    let x = [0.2, 0.4, 0.6];
    let cases: [(BetaMixtureConfig, &str); 5] = [
        (
            BetaMixtureConfig {
                tol: f64::NAN,
                ..Default::default()
            },
            "tol",
        ),
        (
            BetaMixtureConfig {
                max_iter: 0,
                ..Default::default()
            },
            "max_iter",
        ),
        (
            BetaMixtureConfig {
                n_init: 0,
                ..Default::default()
            },
            "n_init",
        ),
        (
            BetaMixtureConfig {
                clamp_eps: 0.0,
                ..Default::default()
            },
            "clamp_eps",
        ),
        (
            BetaMixtureConfig {
                clamp_eps: 0.5,
                ..Default::default()
            },
            "clamp_eps",
        ),
    ];
    for (config, field) in cases {
        let err = BetaMixture::fit(&x, &config).unwrap_err();
        assert!(err.to_string().starts_with(&format!("{field} = ")), "{err}");
    }
    let err = fit_batchwise(&x, 0, &BetaMixtureConfig::default()).unwrap_err();
    assert!(err.to_string().starts_with("batch_size = 0"));
    let config = DirichletMixtureConfig {
        sum_tol: 0.0,
        ..Default::default()
    };
    assert!(DirichletMixture::fit(&[0.5, 0.5], 2, &config)
        .unwrap_err()
        .to_string()
        .starts_with("sum_tol"));
}

#[test]
fn labels_for_fit_from_labels_are_checked() {
    let x = [0.1, 0.2, 0.8, 0.9];
    let config = BetaMixtureConfig::new(2);
    assert_eq!(
        BetaMixture::fit_from_labels(&x, &[0, 0, 1], &config),
        Err(MixtureError::Length {
            what: "labels",
            len: 3,
            expected: 4
        })
    );
    let err = BetaMixture::fit_from_labels(&x, &[0, 0, 2, 1], &config).unwrap_err();
    assert_eq!(err.to_string(), "label at index 2 is 2, not below k = 2");
    let fit = BetaMixture::fit_from_labels(&x, &[0, 0, 1, 1], &config).unwrap();
    assert_eq!(fit.predict(&x).unwrap(), vec![0, 0, 1, 1]);
}

#[test]
fn explicit_parameters_are_validated() {
    let x = [0.3, 0.6];
    assert!(
        BetaMixture::mean_log_likelihood(&x, &[0.5, 0.6], &[1.0, 2.0], &[1.0, 2.0], 1e-6).is_err()
    );
    let err = BetaMixture::mean_log_likelihood(&x, &[0.5, 0.5], &[1.0, -2.0], &[1.0, 2.0], 1e-6)
        .unwrap_err();
    assert_eq!(err.to_string(), "a[1] = -2: must be finite and positive");
    assert!(BetaMixture::mean_log_likelihood(&x, &[1.0], &[1.0, 2.0], &[1.0], 1e-6).is_err());
    // Beta(1, 1) is uniform: ln p = 0 everywhere.
    let ll = BetaMixture::mean_log_likelihood(&x, &[1.0], &[1.0], &[1.0], 1e-6).unwrap();
    assert!(ll.abs() < 1e-14);
    // A zero weight is allowed.
    let ll =
        BetaMixture::mean_log_likelihood(&x, &[1.0, 0.0], &[2.0, 3.0], &[2.0, 3.0], 1e-6).unwrap();
    let direct = x
        .iter()
        .map(|&v: &f64| (6.0 * v * (1.0 - v)).ln())
        .sum::<f64>()
        / 2.0;
    assert!((ll - direct).abs() < 1e-14);
}

#[test]
fn dirichlet_rows_must_sum_to_one() {
    let rows = [0.5, 0.5, 0.7, 0.2, 0.3, 0.7];
    let err = DirichletMixture::fit(&rows, 2, &DirichletMixtureConfig::default()).unwrap_err();
    assert!(
        matches!(err, MixtureError::RowSum { row: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("row 1 sums to 0.89"), "{err}");
    assert!(matches!(
        DirichletMixture::fit(&rows[..5], 2, &DirichletMixtureConfig::default()),
        Err(MixtureError::Shape { len: 5, dim: 2, .. })
    ));
    let err =
        DirichletMixture::fit(&[1.0, 1.0], 1, &DirichletMixtureConfig::default()).unwrap_err();
    assert!(err.to_string().starts_with("m = 1"));
    // Within sum_tol is accepted (f32 softmax rows).
    let rows32: [f32; 6] = [0.1, 0.2, 0.70000005, 0.3, 0.3, 0.4];
    assert!(DirichletMixture::fit(&rows32, 3, &DirichletMixtureConfig::default()).is_ok());
}

#[test]
fn dirichlet_k1_returns_the_mean_row_exactly() {
    let rows: Vec<f64> = (0..97)
        .flat_map(|i| {
            let a = 0.05 + 0.9 * ((i * 37 % 97) as f64 / 97.0);
            let b = (1.0 - a) * 0.3;
            [a, b, 1.0 - a - b]
        })
        .collect();
    for rule in [MStep::MethodOfMoments, MStep::ReferenceMean] {
        let config = DirichletMixtureConfig {
            m_step: rule,
            ..DirichletMixtureConfig::new(1)
        };
        let fit = DirichletMixture::fit(&rows, 3, &config).unwrap();
        let n = (rows.len() / 3) as f64;
        for j in 0..3 {
            let mut s = 0.0;
            for row in rows.chunks_exact(3) {
                s += row[j];
            }
            assert_eq!(
                fit.mean(0)[j].to_bits(),
                (s / n).to_bits(),
                "{rule:?}, entry {j}"
            );
        }
        assert_eq!(fit.weights(), &[1.0]);
        assert_eq!(fit.n_iter(), 0);
        assert_sane_dirichlet(&fit);
        let lam = fit.lambdas(&rows).unwrap();
        assert_eq!(&lam[..3], fit.mean(0));
    }
}

#[test]
fn dirichlet_degenerate_rows() {
    // One-hot rows (zeros are clamped), identical rows, N = K.
    let one_hot = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
    for k in 1..=3 {
        let fit = DirichletMixture::fit(&one_hot, 3, &DirichletMixtureConfig::new(k)).unwrap();
        assert_sane_dirichlet(&fit);
    }
    let same: Vec<f64> = [0.2, 0.3, 0.5].repeat(20);
    for rule in [MStep::MethodOfMoments, MStep::ReferenceMean] {
        let config = DirichletMixtureConfig {
            m_step: rule,
            ..DirichletMixtureConfig::new(3)
        };
        let fit = DirichletMixture::fit(&same, 3, &config).unwrap();
        assert_sane_dirichlet(&fit);
        // Surplus components: Σγx / (Σγ + ε) with Σγ = Nε puts them at N/(N+1) of the value.
        for k in 0..3 {
            for (m, want) in fit.mean(k).iter().zip([0.2, 0.3, 0.5]) {
                assert!(
                    (m - want).abs() <= want / 20.0 + 1e-12,
                    "{rule:?}: {:?}",
                    fit.means()
                );
            }
        }
        for lam in fit.lambdas(&same).unwrap().chunks_exact(3) {
            for (m, want) in lam.iter().zip([0.2, 0.3, 0.5]) {
                assert!((m - want).abs() < 1e-12, "{rule:?}: {lam:?}");
            }
        }
    }
}

#[test]
fn fits_are_bit_identical_and_order_independent() {
    let x: Vec<f64> = (0..2000)
        .map(|i| {
            let u = ((i as u64).wrapping_mul(2654435761) % 10007) as f64 / 10007.0;
            [0.15, 0.5, 0.85][i % 3] + 0.1 * (u - 0.5)
        })
        .collect();
    let config = BetaMixtureConfig::new(3);
    let a = BetaMixture::fit(&x, &config).unwrap();
    let b = BetaMixture::fit(&x, &config).unwrap();
    let bits = |f: &BetaMixtureFit| -> Vec<u64> {
        f.weights()
            .iter()
            .chain(f.a())
            .chain(f.b())
            .chain(f.means())
            .chain([f.mean_log_likelihood()].iter())
            .map(|v| v.to_bits())
            .collect()
    };
    assert_eq!(bits(&a), bits(&b));
    // The EM runs on the sorted coefficients: a permutation of the input changes nothing.
    let mut shuffled = x.clone();
    shuffled.reverse();
    shuffled.swap(3, 1500);
    let c = BetaMixture::fit(&shuffled, &config).unwrap();
    assert_eq!(bits(&a), bits(&c));
    // Predictions are consistent with the posteriors.
    let proba = a.predict_proba(&x).unwrap();
    let labels = a.predict(&x).unwrap();
    for (row, &l) in proba.chunks_exact(3).zip(&labels) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(row.iter().all(|&p| p <= row[l]));
    }
}

#[test]
fn batchwise_short_final_chunk_uses_fewer_components() {
    let x: Vec<f64> = (0..102).map(|i| 0.1 + 0.8 * (i as f64 / 101.0)).collect();
    // 100 + 2: the last chunk has fewer samples than K = 3 and is fitted with K = 2.
    let lambdas = fit_batchwise(&x, 100, &BetaMixtureConfig::new(3)).unwrap();
    assert_eq!(lambdas.len(), 102);
    let tail = BetaMixture::fit(&x[100..], &BetaMixtureConfig::new(2)).unwrap();
    assert_eq!(&lambdas[100..], &tail.lambdas(&x[100..]).unwrap()[..]);
    assert!(lambdas.iter().all(|l| l.is_finite()));
}

#[test]
fn batchwise_equals_one_fit_per_chunk_bit_for_bit() {
    // 37 chunks of 200 (+ a short one), fitted on several threads where the machine has them:
    // the result must be each chunk's own fit, in chunk order.
    let x: Vec<f64> = (0..7_450)
        .map(|i| {
            let u = ((i * 7919) % 9973) as f64 / 9973.0;
            [0.2, 0.5, 0.8][(i / 7) % 3] + 0.15 * (u - 0.5)
        })
        .collect();
    let config = BetaMixtureConfig::new(3);
    let lambdas = fit_batchwise(&x, 200, &config).unwrap();
    let mut want = Vec::new();
    for chunk in x.chunks(200) {
        let cfg = BetaMixtureConfig {
            k: 3.min(chunk.len()),
            ..config.clone()
        };
        want.extend(
            BetaMixture::fit(chunk, &cfg)
                .unwrap()
                .lambdas(chunk)
                .unwrap(),
        );
    }
    assert_eq!(lambdas.len(), want.len());
    for (i, (a, b)) in lambdas.iter().zip(&want).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "sample {i}");
    }
    // A bad value in a late chunk is still reported, with its index in the whole input.
    let mut bad = x.clone();
    bad[7_000] = f64::NAN;
    let err = fit_batchwise(&bad, 200, &config).unwrap_err().to_string();
    assert!(err.contains("7000"), "{err}");
}
