//! DaWin's numerics against values computed independently with NumPy/SciPy by
//! `scripts/core_reference.py` (numpy 2.1.3, scipy 1.14.1). The inputs below are the script's.

use dawin_core::expertise::{ensemble_targets, expertise_by_name, merged_targets, BUILTIN_NAMES};
use dawin_core::expertise::{Context, ModelOutputs};
use dawin_core::{coef, metrics, stats, temperature};

const Z0: [f32; 20] = [
    2.0, 1.0, 0.1, -1.0, 0.5, 0.4, 0.3, 0.2, -3.0, 4.0, 1.0, 0.0, 1.5, 1.5, -0.5, 0.25, 0.0, 0.0,
    0.0, 3.5,
];
const Z1: [f32; 20] = [
    0.2, 3.0, 0.1, -2.0, 2.5, -0.4, 0.3, 0.0, -1.0, 1.0, 1.2, 0.0, 0.1, 2.0, -0.5, 0.7, 1.0, 0.5,
    0.0, 0.5,
];
const ZM: [f32; 20] = [
    1.1, 2.0, 0.1, -1.5, 1.5, 0.0, 0.3, 0.1, -2.0, 2.5, 1.1, 0.0, 0.8, 1.75, -0.5, 0.5, 0.5, 0.25,
    0.0, 2.0,
];
const Y: [i64; 5] = [0, 0, 2, 1, 3];
const T0: f32 = 0.9576;
const T1: f32 = 0.9733;

fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn entropies_match_scipy() {
    close(
        &stats::entropy(&Z0, 4, T0).unwrap(),
        &[
            0.934037604758,
            1.379510084157,
            0.251885145357,
            1.129129030639,
            0.33788369938,
        ],
        1e-6,
        "H0",
    );
    close(
        &stats::entropy(&Z1, 4, T1).unwrap(),
        &[
            0.415767548654,
            0.682617090647,
            1.137983383652,
            0.950137044414,
            1.322432616797,
        ],
        1e-6,
        "H1",
    );
}

fn log_e(name: &str, ctx_labels: bool, pseudo: Option<&[f32]>) -> (Vec<f64>, Vec<f64>) {
    let m = expertise_by_name(name).unwrap();
    let ctx = Context {
        labels: ctx_labels.then_some(&Y[..]),
        pseudo_targets: pseudo,
    };
    let m0 = ModelOutputs::new(&Z0, 4, T0);
    let m1 = ModelOutputs::new(&Z1, 4, T1);
    (
        m.log_expertise(&m0, &ctx).unwrap(),
        m.log_expertise(&m1, &ctx).unwrap(),
    )
}

#[test]
fn eq1_and_eq2_match_scipy() {
    let (e0, e1) = log_e("entropy", false, None);
    close(
        &coef::lambda_eq1(&e0, &e1).unwrap(),
        &[
            0.626743158675,
            0.667498549226,
            0.291915669853,
            0.544628907898,
            0.271990112081,
        ],
        1e-6,
        "eq1",
    );
    let h0 = stats::entropy(&Z0, 4, T0).unwrap();
    let h1 = stats::entropy(&Z1, 4, T1).unwrap();
    let off = coef::domain_offset(&h0, &h1).unwrap();
    assert!((off.offset - 0.506007166109).abs() < 1e-6, "{off:?}");
    assert!((off.ratio - 2.118164551084).abs() < 1e-6, "{off:?}");
    close(
        &coef::lambda_eq2(&e0, &e1, off).unwrap(),
        &[
            0.576546312018,
            0.589217114083,
            0.348766711054,
            0.514450963745,
            0.340143589333,
        ],
        1e-6,
        "eq2",
    );
}

#[test]
fn every_builtin_metric_matches_scipy() {
    let m0 = ModelOutputs::new(&Z0, 4, T0);
    let m1 = ModelOutputs::new(&Z1, 4, T1);
    let yhat = ensemble_targets(&m0, &m1).unwrap();
    let ytilde = merged_targets(&ModelOutputs::new(&ZM, 4, 1.0)).unwrap();
    let expected: [(&str, [f64; 5]); 9] = [
        (
            "entropy",
            [
                0.626743158675,
                0.667498549226,
                0.291915669853,
                0.544628907898,
                0.271990112081,
            ],
        ),
        (
            "ce-oracle",
            [
                0.071982991805,
                0.736528543258,
                0.916654347174,
                0.617803838976,
                0.201518046371,
            ],
        ),
        (
            "pl-ensemble-soft",
            [
                0.449420182093,
                0.4886110421,
                0.55959637188,
                0.487482882153,
                0.554479745964,
            ],
        ),
        (
            "pl-ensemble-hard",
            [
                0.796484907764,
                0.736528543258,
                0.280782279475,
                0.617803838976,
                0.201518046371,
            ],
        ),
        (
            "pl-merged-soft",
            [
                0.52726428823,
                0.500696903104,
                0.477614539037,
                0.505611579487,
                0.480558316231,
            ],
        ),
        (
            "pl-merged-hard",
            [
                0.796484907764,
                0.736528543258,
                0.280782279475,
                0.617803838976,
                0.201518046371,
            ],
        ),
        (
            "max-logit",
            [
                0.6,
                0.833333333333,
                0.230769230769,
                0.571428571429,
                0.222222222222,
            ],
        ),
        (
            "max-prob",
            [
                0.561233855048,
                0.627481270433,
                0.379596874593,
                0.563996917571,
                0.368995739799,
            ],
        ),
        (
            "top-gap",
            [
                0.604714572837,
                0.667822837707,
                0.306070213229,
                0.621858891724,
                0.321533670004,
            ],
        ),
    ];
    assert_eq!(expected.len(), BUILTIN_NAMES.len());
    for (name, want) in expected {
        let pseudo = if name.starts_with("pl-ensemble") {
            Some(&yhat[..])
        } else if name.starts_with("pl-merged") {
            Some(&ytilde[..])
        } else {
            None
        };
        let (e0, e1) = log_e(name, name == "ce-oracle", pseudo);
        close(&coef::lambda_eq1(&e0, &e1).unwrap(), &want, 2e-6, name);
    }
}

#[test]
fn multi_model_softmax_matches_scipy() {
    let cols: Vec<Vec<f64>> = [(&Z0[..], T0), (&Z1[..], T1), (&ZM[..], 1.0)]
        .iter()
        .map(|(z, t)| {
            stats::entropy(z, 4, *t)
                .unwrap()
                .into_iter()
                .map(|h| -(h as f64))
                .collect()
        })
        .collect();
    let l = coef::lambda_multi(&coef::stack_columns(&cols).unwrap(), 3).unwrap();
    close(
        &l,
        &[
            0.272086282765,
            0.456865614806,
            0.271048102428,
            0.235097674966,
            0.471959916567,
            0.292942408467,
            0.493673295176,
            0.203522327093,
            0.302804377731,
            0.311709453442,
            0.372807984859,
            0.315482561699,
            0.532195469372,
            0.198832334238,
            0.26897219639,
        ],
        1e-6,
        "lambda_multi",
    );
}

#[test]
fn extreme_logits_stay_finite_and_match_scipy() {
    let z = [1e4f32, -1e4, 0.0, 9999.0, -1e4, -1e4, -1e4, -1e4];
    let r = stats::row_stats(&z, 4, 0.5).unwrap();
    close(
        &[r[0].logsumexp, r[1].logsumexp],
        &[20000.126928011043, -19998.61370563888],
        1e-7,
        "lse",
    );
    close(
        &[r[0].entropy, r[1].entropy],
        &[0.365333855087, 1.38629436112],
        1e-6,
        "H",
    );
    close(
        &[r[0].max_prob, r[1].max_prob],
        &[0.880797077978, 0.25],
        1e-6,
        "max p",
    );
    assert_eq!(r[0].argmax, 0);
    assert_eq!(r[1].argmax, 0, "ties resolve to the first index");
    assert_eq!(r[1].top1_minus_top2, 0.0);
}

#[test]
fn temperature_matches_scipy_bounded_search() {
    let mut zv: Vec<f32> = Vec::new();
    for z in [&Z0, &Z1, &ZM] {
        zv.extend(z.iter().map(|v| v * 2.0));
    }
    let yv = [0i64, 0, 2, 1, 3, 1, 0, 2, 1, 0, 1, 0, 1, 1, 3];
    let fit = temperature::fit_temperature(&zv, 4, &yv).unwrap();
    assert!(!fit.at_bound);
    assert!(
        (fit.temperature as f64 - 1.278488942803).abs() < 1e-5,
        "{fit:?}"
    );
    assert!((fit.nll - 0.652754295034).abs() < 1e-9, "{fit:?}");
    assert!(fit.nll <= fit.nll_at_one);
}

#[test]
fn pearson_matches_scipy() {
    let h0 = stats::entropy(&Z0, 4, T0).unwrap();
    let h1 = stats::entropy(&Z1, 4, T1).unwrap();
    let l0 = stats::cross_entropy_hard(&Z0, 4, T0, &Y).unwrap();
    let l1 = stats::cross_entropy_hard(&Z1, 4, T1, &Y).unwrap();
    let x: Vec<f64> = h0
        .iter()
        .zip(&h1)
        .map(|(a, b)| (a / (a + b)) as f64)
        .collect();
    let y: Vec<f64> = l0
        .iter()
        .zip(&l1)
        .map(|(a, b)| (a / (a + b)) as f64)
        .collect();
    assert!((metrics::pearson(&x, &y).unwrap() - 0.09097719262).abs() < 1e-6);
}
