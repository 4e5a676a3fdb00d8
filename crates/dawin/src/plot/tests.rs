//! The three figures on small hand-made inputs: both files exist; the PNG decodes at the
//! documented size with ink where text and axes are and the data's colours where the data is;
//! the SVG parses as XML and carries the titles, axis descriptions and legend entries as
//! `<text>`; bad input is an error naming it.
use super::*;
use crate::eval::{PairArrays, PerSample};
use crate::mtl::MtlReport;
use crate::report::Report;
use serde_json::json;

/// The `<text>` contents of an SVG (parsed as XML; the root must be `<svg>` of size `size`).
fn svg_texts(path: &Path, size: (u32, u32)) -> Vec<String> {
    let s = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&s).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        (root.attribute("width"), root.attribute("height")),
        (Some(&*size.0.to_string()), Some(&*size.1.to_string()))
    );
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

/// The SVG's `<rect>`s filled with `colour` (`#RRGGBB`): (x, y, width, height).
fn svg_rects(path: &Path, colour: RGBColor) -> Vec<[f64; 4]> {
    let s = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&s).unwrap();
    let fill = format!("#{:02X}{:02X}{:02X}", colour.0, colour.1, colour.2);
    doc.descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(&*fill))
        .map(|n| ["x", "y", "width", "height"].map(|a| n.attribute(a).unwrap().parse().unwrap()))
        .collect()
}

/// The PNG, decoded, of size `size`, with at least `dark` near-black pixels (text, axes).
fn png(path: &Path, size: (u32, u32), dark: usize) -> image::RgbImage {
    let img = image::open(path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), size);
    let n = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
    assert!(n >= dark, "{}: {n} dark pixels", path.display());
    img
}

/// Pixels of exactly `colour` with x in `xs`: (count, mean x, mean y).
fn blob(img: &image::RgbImage, colour: RGBColor, xs: std::ops::Range<u32>) -> (usize, f64, f64) {
    let mut s = (0, 0.0, 0.0);
    for (x, y, p) in img.enumerate_pixels() {
        if xs.contains(&x) && p.0 == [colour.0, colour.1, colour.2] {
            s = (s.0 + 1, s.1 + x as f64, s.2 + y as f64);
        }
    }
    (s.0, s.1 / s.0.max(1) as f64, s.2 / s.0.max(1) as f64)
}

fn sample(name: &str, lambda: &[f32]) -> PerSample {
    PerSample {
        dataset: name.into(),
        labels: vec![0; lambda.len()],
        cluster: vec![-1; lambda.len()],
        predictions: Default::default(),
        arrays: PairArrays {
            h0: vec![0.0; lambda.len()],
            h1: vec![0.0; lambda.len()],
            lambda: lambda.to_vec(),
        },
    }
}

fn report(methods: &[(&str, f64, Option<f64>)], curve: &[(f64, Option<f64>)]) -> Report {
    let rows: Vec<_> = methods
        .iter()
        .map(|(m, id, ood)| json!({"method": m, "accuracy": {"id": id}, "id": id, "ood_mean": ood, "merges": null}))
        .collect();
    let curve: Vec<_> = curve
        .iter()
        .enumerate()
        .map(|(i, (id, ood))| json!({"lambda": i as f32 / 10.0, "id": id, "ood_mean": ood}))
        .collect();
    serde_json::from_value(json!({
        "theta0": "zs", "theta1": "ft", "val": "val", "id": "id", "per_sample_forward": null,
        "datasets": ["id"], "n_samples": {"id": 10}, "methods": rows, "temperatures": [1.0, 1.0],
        "temperatures_fitted": false, "wise_lambda": null, "ensemble_weight": null,
        "wise_curve": curve, "mixtures": {}, "mean_lambda": {}, "expertise": "entropy",
        "coefficient": "eq1", "k": 3, "wise_alpha": null, "seed": 0, "device": "cpu",
        "cache_dir": null, "cache_hits": 0, "cache_misses": 0, "timings": []
    }))
    .unwrap()
}

fn mtl(mean_lambda: serde_json::Value) -> MtlReport {
    serde_json::from_value(json!({
        "models": ["digits", "rotation"], "datasets": ["digits", "rotation"],
        "n_samples": {}, "methods": [], "scale": 0.6, "ta_scale": 0.3, "k": 1, "ties_top": 0.2,
        "ties_scale": 0.3, "mean_lambda": mean_lambda, "mixtures": {}, "timings": []
    }))
    .unwrap()
}

#[test]
fn histograms_bin_lambda_per_dataset_and_are_titled_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hist.png");
    // Bins of 0.05: 0.0 and 0.04 → bin 0, 0.05 → 1, 0.5 → 10, 1.0 → the last.
    let a = sample("photos", &[0.0, 0.04, 0.05, 0.5, 1.0]);
    let b = sample("sketches", &[0.3, 0.3, 0.3]);
    lambda_histograms(&[a, b, sample("empty", &[])], &path).unwrap();
    let size = (720, 3 * 200 + 28);
    let img = png(&path, size, 2000);
    let svg = path.with_extension("svg");
    let texts = svg_texts(&svg, size);
    for want in [
        "photos  (n = 5, mean λ = 0.318)",
        "sketches  (n = 3, mean λ = 0.300)",
        "empty  (n = 0)",
        "no samples",
        "samples",
        "λ (weight of the fine-tuned model θ₁)",
        "0.5",
    ] {
        assert!(texts.iter().any(|t| t == want), "{want:?} not in {texts:?}");
    }
    // One bar per non-empty bin, in the dataset's colour, heights proportional to the counts:
    // bin 0 holds two samples, the others one.
    let mut bars = svg_rects(&svg, PALETTE[0]);
    assert_eq!(bars.len(), 4, "{bars:?}");
    bars.sort_by(|p, q| p[0].total_cmp(&q[0]));
    assert!((bars[0][3] - 2.0 * bars[1][3]).abs() <= 2.0, "{bars:?}");
    assert!(bars[1..].iter().all(|r| (r[3] - bars[1][3]).abs() <= 1.0));
    let (x0, x1) = (bars[0][0], bars[3][0]);
    assert!(
        (bars[2][0] - (x0 + 10.0 * (x1 - x0) / 19.0)).abs() <= 2.0,
        "{bars:?}"
    );
    assert_eq!(svg_rects(&svg, PALETTE[1]).len(), 1);
    // The PNG shows the same bars: each panel's colour only inside its panel.
    let (n0, _, y0) = blob(&img, PALETTE[0], 0..720);
    let (n1, _, y1) = blob(&img, PALETTE[1], 0..720);
    assert!(n0 > 100 && n1 > 100 && y0 < 200.0 && (200.0..400.0).contains(&y1));
}

#[test]
fn histograms_refuse_bad_lambda_and_no_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hist.png");
    let e = lambda_histograms(&[], &path).unwrap_err().to_string();
    assert!(e.contains("no dataset"), "{e}");
    for (bad, why) in [(f32::NAN, "NaN"), (1.5, "outside [0, 1]")] {
        let e = lambda_histograms(&[sample("photos", &[0.2, bad])], &path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sample 1 of dataset photos") && e.contains(why),
            "{e}"
        );
    }
    assert!(!path.exists() && !path.with_extension("svg").exists());
}

#[test]
fn id_vs_ood_places_one_marker_per_method_and_the_wise_curve() {
    let dir = tempfile::tempdir().unwrap();
    // Given as .svg: the PNG twin is written too.
    let path = dir.path().join("scatter.svg");
    let r = report(
        &[
            ("zs", 80.0, Some(70.0)),
            ("ft", 90.0, Some(60.0)),
            ("dawin", 88.0, Some(72.0)),
            ("no-ood", 85.0, None),
        ],
        &[(80.0, Some(70.0)), (86.0, Some(68.0)), (90.0, Some(60.0))],
    );
    id_vs_ood(&r, &path).unwrap();
    let texts = svg_texts(&path, (780, 540));
    for want in [
        "ID vs. mean OOD accuracy",
        "ID accuracy (%)",
        "mean OOD accuracy (%)",
        "zs",
        "ft",
        "dawin",
        "WiSE-FT, λ = 0…1",
    ] {
        assert!(texts.iter().any(|t| t == want), "{want:?} not in {texts:?}");
    }
    assert!(
        !texts.iter().any(|t| t == "no-ood"),
        "a method without OOD mean has no marker"
    );
    let img = png(&path.with_extension("png"), (780, 540), 2000);
    // Markers (left of the legend) in table-order colours: zs left of dawin left of ft; dawin
    // highest, ft lowest (pixel y grows downwards).
    let at = |i: usize| blob(&img, PALETTE[i], 0..550);
    let (zs, ft, dw) = (at(0), at(1), at(2));
    assert!(zs.0 > 50 && ft.0 > 50 && dw.0 > 50, "{zs:?} {ft:?} {dw:?}");
    assert!(zs.1 < dw.1 && dw.1 < ft.1);
    assert!(dw.2 < zs.2 && zs.2 < ft.2);
    // Markers scale linearly: dawin's x sits 80 % of the way from zs to ft.
    assert!(((dw.1 - zs.1) / (ft.1 - zs.1) - 0.8).abs() < 0.03);
    // The grey curve and the legend.
    assert!(blob(&img, scatter::CURVE, 0..550).0 > 50);
    assert!(blob(&img, PALETTE[0], 550..780).0 > 30);
}

#[test]
fn id_vs_ood_without_ood_says_so_and_refuses_nan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scatter.png");
    id_vs_ood(&report(&[("zs", 80.0, None)], &[]), &path).unwrap();
    let texts = svg_texts(&path.with_extension("svg"), (780, 540));
    assert!(
        texts.iter().any(|t| t == "no OOD dataset: nothing to plot"),
        "{texts:?}"
    );
    png(&path, (780, 540), 100);
    // (JSON has no NaN: the values are set after parsing.)
    let mut r = report(&[("dawin", 1.0, Some(1.0))], &[]);
    r.methods[0].summary.id = f64::NAN;
    let e = id_vs_ood(&r, &path).unwrap_err().to_string();
    assert!(e.contains("method dawin") && e.contains("NaN"), "{e}");
    let mut r = report(&[], &[(1.0, Some(1.0)), (1.0, Some(1.0))]);
    r.wise_curve[1].ood_mean = Some(f64::INFINITY);
    let e = id_vs_ood(&r, &path).unwrap_err().to_string();
    assert!(e.contains("WiSE-FT at λ = 0.1"), "{e}");
}

#[test]
fn heatmap_svg_names_rows_columns_and_values_and_bad_reports_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heat.png");
    let r = mtl(json!({
        "digits": {"digits": 0.75, "rotation": 0.25},
        "rotation": {"digits": 0.375, "rotation": 0.625}
    }));
    lambda_heatmap(&r, &path).unwrap();
    let (ox, oy) = HEATMAP_ORIGIN;
    let size = (ox + 2 * HEATMAP_CELL + 4, oy + 2 * HEATMAP_CELL + 4);
    png(&path, size, 500);
    let svg = path.with_extension("svg");
    let texts = svg_texts(&svg, size);
    for want in [
        "Mean λⱼ per dataset",
        "fine-tuned model θⱼ",
        "dataset",
        "digits",
        "rotation",
        "0.75",
        "0.25",
        "0.38",
        "0.62",
    ] {
        assert!(texts.iter().any(|t| t == want), "{want:?} not in {texts:?}");
    }
    // The cells, in heat_color; the own experts framed in black.
    let c = heat_color(0.75);
    assert_eq!(svg_rects(&svg, RGBColor(c[0], c[1], c[2])).len(), 1);
    assert_eq!(svg_rects(&svg, BLACK).len(), 2);
    let missing =
        mtl(json!({"digits": {"digits": 1.0, "rotation": 0.0}, "rotation": {"digits": 0.5}}));
    let e = lambda_heatmap(&missing, &path).unwrap_err().to_string();
    assert!(
        e.contains("model rotation on dataset rotation") && e.contains("missing"),
        "{e}"
    );
    let mut nan = r.clone();
    nan.mean_lambda
        .get_mut("digits")
        .unwrap()
        .insert("rotation".into(), f64::NAN);
    let e = lambda_heatmap(&nan, &path).unwrap_err().to_string();
    assert!(
        e.contains("model rotation on dataset digits") && e.contains("NaN"),
        "{e}"
    );
    let e = lambda_heatmap(&r, &dir.path().join("heat.pdf")).unwrap_err();
    assert!(e.to_string().contains(".png or .svg"), "{e}");
    let mut empty = r;
    empty.models.clear();
    let e = lambda_heatmap(&empty, &path).unwrap_err().to_string();
    assert!(e.contains("0 model(s)"), "{e}");
}

#[test]
fn fit_cuts_by_characters_and_by_drawn_width() {
    assert_eq!(fit("abcdefgh", 5), "abcd.");
    assert_eq!(fit("abc", 5), "abc");
    font_ready().unwrap();
    let w = text_width("imagenet-sketch", TICK);
    assert!(w > 60, "{w}");
    assert_eq!(fit_px("imagenet-sketch", TICK, w), "imagenet-sketch");
    let cut = fit_px("imagenet-sketch", TICK, w / 2);
    assert!(
        cut.ends_with('.') && text_width(&cut, TICK) <= w / 2,
        "{cut}"
    );
}

#[test]
fn the_svg_twin_sits_beside_the_png_and_other_extensions_are_refused() {
    let (p, s) = twin_paths(Path::new("out/x.png")).unwrap();
    assert_eq!(
        (p.to_str(), s.to_str()),
        (Some("out/x.png"), Some("out/x.svg"))
    );
    let (p, s) = twin_paths(Path::new("x.svg")).unwrap();
    assert_eq!((p.to_str(), s.to_str()), (Some("x.png"), Some("x.svg")));
    for bad in ["x.pdf", "x", "dir/"] {
        let e = twin_paths(Path::new(bad)).unwrap_err().to_string();
        assert!(e.contains(".png or .svg"), "{bad}: {e}");
    }
}
