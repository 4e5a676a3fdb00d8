//! Stage 0 of the multi-task evaluation, the inputs: the fine-tuned encoders against the base,
//! the tasks (dataset and head) against the encoder, and the settings.
use super::config::{MtlConfig, MtlTask};
use crate::error::{Error, Result};
use crate::pipeline::checks::{check_max_distance, unique};
use dawin_core::merge::ParamSource;
use dawin_vit::ClipClassifier;
use std::collections::HashSet;

/// Checks a multi-task evaluation's inputs ([`super::evaluate_mtl_full`]): the fine-tuned
/// encoders against the base ([`check_models`]), the tasks (named once, [`check_task`]) and the
/// settings. Returns DaWin's scale `s` (`0.3·M` unless set).
pub(crate) fn check_mtl<E: ParamSource>(
    base: &ClipClassifier,
    models: &[(String, &E)],
    tasks: &[MtlTask<'_>],
    config: &MtlConfig,
) -> Result<f32> {
    check_models(base, models)?;
    if tasks.is_empty() {
        return Err(Error::invalid("--test", "no evaluation dataset"));
    }
    for (i, t) in tasks.iter().enumerate() {
        unique(tasks[..=i].iter().map(|t| t.name.as_str()))?;
        check_task(base, t)?;
    }
    if config.methods.is_empty() {
        return Err(Error::invalid("--methods", "no method selected"));
    }
    if config.k == 0 {
        return Err(Error::invalid("--k", "must be ≥ 1"));
    }
    let s = config
        .scale
        .unwrap_or_else(|| dawin_core::coef::default_scale(models.len()));
    for (what, v) in [
        ("--scale", s),
        ("--ties-scale", config.ties_scale),
        ("task-arithmetic scale", config.ta_scale),
    ] {
        if !v.is_finite() {
            return Err(Error::invalid(what, format!("must be finite, got {v}")));
        }
    }
    check_max_distance(config.max_distance)?;
    Ok(s)
}

/// Every fine-tuned encoder lines up with the base's encoder, parameter by parameter (its
/// values are not read), and is named once.
fn check_models<E: ParamSource>(base: &ClipClassifier, models: &[(String, &E)]) -> Result<()> {
    if models.is_empty() {
        return Err(Error::invalid(
            "--model",
            "at least one fine-tuned model is required",
        ));
    }
    let bp = base.weights().encoder_params();
    let mut seen = HashSet::new();
    for (name, m) in models {
        if !seen.insert(name.as_str()) {
            return Err(Error::invalid(format!("model `{name}`"), "appears twice"));
        }
        if m.param_count() != bp.len() {
            return Err(Error::invalid(
                format!("model `{name}`"),
                format!(
                    "has {} encoder parameter tensors, the base {}: another architecture",
                    m.param_count(),
                    bp.len()
                ),
            ));
        }
        for (i, x) in bp.iter().enumerate() {
            if x.len() != m.param_len(i) {
                return Err(Error::invalid(
                    format!("model `{name}`"),
                    format!(
                        "parameter tensor #{i} ({}) has {} values, the base {}",
                        m.param_name(i),
                        m.param_len(i),
                        x.len()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A task's head reads the encoder's embedding, and its dataset fits the encoder and the head.
fn check_task(base: &ClipClassifier, t: &MtlTask<'_>) -> Result<()> {
    let what = || format!("dataset `{}`", t.name);
    let e = base.config().embed_dim;
    if t.head.in_dim != e || t.head.weight.len() != t.head.out_dim * e {
        return Err(Error::invalid(
            format!("head of `{}`", t.name),
            format!(
                "has input width {}, the encoder's embedding width is {e}",
                t.head.in_dim
            ),
        ));
    }
    if t.head.out_dim == 0 {
        return Err(Error::invalid(
            format!("head of `{}`", t.name),
            "has no class",
        ));
    }
    let d = t.data;
    if d.is_empty() {
        return Err(Error::invalid(what(), "is empty (no samples)"));
    }
    if d.sample_numel() != base.config().image_numel() {
        return Err(Error::invalid(
            what(),
            format!(
                "samples have {} values, the encoder takes {}",
                d.sample_numel(),
                base.config().image_numel()
            ),
        ));
    }
    if let Some(need) = d.head_classes().filter(|&n| n != t.head.out_dim) {
        return Err(Error::invalid(
            what(),
            format!(
                "its convention needs an ImageNet-1k head of {need} classes, its head has {}",
                t.head.out_dim
            ),
        ));
    }
    if let Some(m) = d.class_mapping() {
        if m.min_head_classes() > t.head.out_dim {
            return Err(Error::invalid(
                what(),
                format!(
                    "its class mapping names head class {}, its head has {} classes",
                    m.min_head_classes() - 1,
                    t.head.out_dim
                ),
            ));
        }
    }
    let c = crate::pipeline::logits::classes_of(d, t.head.out_dim) as i64;
    if let Some(i) = d.labels().iter().position(|&y| y < 0 || y >= c) {
        return Err(Error::invalid(
            what(),
            format!(
                "label {} of sample {i} is not a class of its head ({c} classes)",
                d.labels()[i]
            ),
        ));
    }
    Ok(())
}
