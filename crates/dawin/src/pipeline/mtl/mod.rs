//! The multi-task evaluation, [`evaluate_mtl_full`] (the paper's §4.3 / Table 6 setting), on the
//! two-model pipeline's stages:
//!
//! ```text
//! 0 inputs        mtl::checks::check_mtl, task_arithmetic::relative_distance   ‖θ_j − θ0‖/‖θ0‖
//! 1 logits        logits::{features, apply_head}                          z_j = W_D f_j + b_D
//! 2 coefficients  mtl::lambda::task_arrays                                λ_j(x) = softmax_j(−H_j(x))
//! 3 clustering    clustering::dirichlet_clusters                          k_i, mean λ vector
//! 4 merged        merged::forward_groups, cpu::blended::forward           θ0 + s Σ_j λ_j τ_j
//!   baselines     mtl::task_arithmetic::{merge_encoders, ties_merge}      WA, TA, TIES
//! 5 report        report::{Row, PerSample, Timer}, mtl::report::MtlReport
//! ```
pub(crate) mod checks;
pub(crate) mod config;
pub(crate) mod device;
pub(crate) mod lambda;
pub(crate) mod report;
pub(crate) mod task_arithmetic;

use self::checks::check_mtl;
use self::config::{MtlConfig, MtlMethod, MtlTask};
use self::device::{Encoder, EncoderForward, MtlDevice};
use self::lambda::{mean_lambda, task_arrays, task_weights};
use self::report::{MeanAccuracy, MtlOutput, MtlPerSample, MtlReport, MtlRow};
use self::task_arithmetic::{encoder_of, merge_encoders, relative_distance, ties_merge};
use super::clustering::{dirichlet_clusters, DirichletReport};
use super::logits::{apply_head, batches, classes_of, features, map_logits};
use super::merged::forward_groups;
use super::report::{accuracy, DataInfo, Row, TaskArrays, Timer};
use crate::error::{Error, Result};
use crate::progress;
use dawin_core::merge::ParamSource;
use dawin_core::stats;
use dawin_vit::arch::Architecture;
use dawin_vit::{
    complete_vision_tower, cpu, embed_width, load_head, open_checkpoint, resolve_checkpoint,
    BlendedWeights, CheckpointEncoder, ClipClassifier, Linear, LoadOptions, Opened,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Runs the multi-task comparison: `base` θ0, the named fine-tuned `models` (every one of θ0's
/// architecture, with any head), and the evaluation `tasks`, each with its own head: the report
/// of [`evaluate_mtl_full`].
pub fn evaluate_mtl<E: ParamSource>(
    base: &ClipClassifier,
    models: &[(String, &E)],
    tasks: &[MtlTask<'_>],
    config: &MtlConfig,
) -> Result<MtlReport>
where
    Error: From<E::Error>,
{
    Ok(evaluate_mtl_full(base, models, tasks, config)?.report)
}

/// [`evaluate_mtl`] with the per-sample arrays (entropies, λ vectors, mixture components,
/// predictions of every row).
pub fn evaluate_mtl_full<E: ParamSource>(
    base: &ClipClassifier,
    models: &[(String, &E)],
    tasks: &[MtlTask<'_>],
    config: &MtlConfig,
) -> Result<MtlOutput>
where
    Error: From<E::Error>,
{
    evaluate_mtl_on(None, base, models, tasks, config)
}

/// [`evaluate_mtl_full`] with the encoders' forwards and merges on `device` (e.g.
/// [`crate::cuda::mtl::CudaEncoders`], which holds θ0 and the M encoders of `models`, uploaded
/// once, in this order): the fine-tuned and base rows from the uploaded encoders, weight
/// averaging, task arithmetic and DaWin's per-component merges by the task-arithmetic kernel,
/// TIES merged on the host and uploaded, `dawin-sample` by the blended forward (on the CPU when
/// the device cannot run it). The heads, λ, mixtures and report are the CPU's.
pub fn evaluate_mtl_device<E: ParamSource>(
    device: &dyn MtlDevice,
    base: &ClipClassifier,
    models: &[(String, &E)],
    tasks: &[MtlTask<'_>],
    config: &MtlConfig,
) -> Result<MtlOutput>
where
    Error: From<E::Error>,
{
    // The device must hold θ0 and these models, in this order.
    let mut want = vec![device::probe::<[&[f32]]>(
        &base.weights().encoder_params()[..],
    )?];
    for (_, m) in models {
        want.push(device::probe(*m)?);
    }
    let have = device.probes();
    if have.len() != want.len() {
        return Err(Error::invalid(
            "device",
            format!(
                "holds {} fine-tuned models, the evaluation is given {}",
                have.len().saturating_sub(1),
                models.len()
            ),
        ));
    }
    for (j, (h, w)) in have.iter().zip(&want).enumerate() {
        let same = h.len() == w.len() && h.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            let what = match j {
                0 => "θ0".to_string(),
                j => format!("model `{}`", models[j - 1].0),
            };
            return Err(Error::invalid(
                "device",
                format!(
                    "holds another encoder than {what} at position {j}: upload θ0 and the \
                     models given to the evaluation, in the same order"
                ),
            ));
        }
    }
    evaluate_mtl_on(Some(device), base, models, tasks, config)
}

fn evaluate_mtl_on<E: ParamSource>(
    device: Option<&dyn MtlDevice>,
    base: &ClipClassifier,
    models: &[(String, &E)],
    tasks: &[MtlTask<'_>],
    config: &MtlConfig,
) -> Result<MtlOutput>
where
    Error: From<E::Error>,
{
    let t_all = Instant::now();
    let s = check_mtl(base, models, tasks, config)?;
    let mut timer = Timer::default();
    let names: Vec<String> = models.iter().map(|(n, _)| n.clone()).collect();
    let run = Run {
        base,
        models: models.iter().map(|(_, m)| *m).collect(),
        tasks,
        config,
        s,
        device,
    };
    // 0. Every model must be a fine-tune of this base.
    let t = Instant::now();
    let distances = run.distances(&names)?;
    timer.add("distances", t);
    // 1. Every fine-tuned model on every dataset (the individual rows and the λ vectors); one
    //    model in memory at a time.
    let t = Instant::now();
    let ft_logits = run.fine_tuned_logits(&names)?;
    timer.add("fine-tuned", t);
    // 2. λ_j(x) = softmax_j(−H_j(x)) per dataset, and their means (the heat map).
    let t = Instant::now();
    let arrays = (tasks.iter().zip(&ft_logits))
        .map(|(task, z)| task_arrays(z, task_classes(task)))
        .collect::<Result<Vec<_>>>()?;
    let mean_lambda = (tasks.iter().zip(&arrays))
        .map(|(task, a)| (task.name.clone(), mean_lambda(&a.lambda, &names)))
        .collect();
    timer.add("coefficients", t);
    // 3–4. Every method: its merges, forwards and predictions.
    let mut table = Table {
        datasets: tasks.iter().map(|t| t.name.clone()).collect(),
        rows: Vec::new(),
        preds: vec![BTreeMap::new(); tasks.len()],
        clusters: vec![None; tasks.len()],
        mixtures: BTreeMap::new(),
    };
    for &method in &config.methods {
        let t = Instant::now();
        run.method(method, &names, &ft_logits, &arrays, &mut table)?;
        timer.add(method.name(), t);
    }
    // 5. The report.
    let per_sample = (tasks.iter().zip(arrays))
        .zip(table.preds.into_iter().zip(table.clusters))
        .map(|((task, arrays), (predictions, cluster))| MtlPerSample {
            dataset: task.name.clone(),
            labels: task.data.labels().to_vec(),
            cluster: cluster.unwrap_or_else(|| vec![-1; task.data.len()]),
            predictions,
            arrays,
        })
        .collect();
    let report = MtlReport {
        models: names,
        datasets: table.datasets,
        n_samples: (tasks.iter().map(|t| (t.name.clone(), t.data.len()))).collect(),
        methods: table.rows,
        scale: s,
        ta_scale: config.ta_scale,
        k: config.k,
        ties_top: config.ties_top,
        ties_scale: config.ties_scale,
        mean_lambda,
        mixtures: table.mixtures,
        relative_distance: distances,
        device: device.map_or_else(|| "cpu".to_string(), |d| d.describe()),
        timings: timer.finish(t_all),
        data: (tasks.iter())
            .map(|t| (t.name.clone(), DataInfo::of(t.data)))
            .collect(),
    };
    Ok(MtlOutput { report, per_sample })
}

/// The inputs every stage of one multi-task evaluation reads.
struct Run<'a, E: ?Sized> {
    base: &'a ClipClassifier,
    models: Vec<&'a E>,
    tasks: &'a [MtlTask<'a>],
    config: &'a MtlConfig,
    /// DaWin's scale s.
    s: f32,
    /// Where the encoders run; `None`: the CPU.
    device: Option<&'a dyn MtlDevice>,
}

/// `dawin-sample`'s per-sample forward: on the device, or the CPU's stacked encoders.
enum Blend<'d> {
    Device(Box<dyn EncoderForward + 'd>),
    Cpu(Box<BlendedWeights>),
}

/// An encoder to run: on the host, or prepared on the device.
enum Enc<'e> {
    Host(&'e ClipClassifier),
    Device(&'e dyn EncoderForward),
}

/// The table as the methods fill it: rows, and per dataset the predictions of every row, the
/// mixture components and the Dirichlet mixture.
struct Table {
    datasets: Vec<String>,
    rows: Vec<MtlRow>,
    preds: Vec<BTreeMap<String, Vec<u32>>>,
    clusters: Vec<Option<Vec<i64>>>,
    mixtures: BTreeMap<String, DirichletReport>,
}

impl Table {
    /// A row from its predictions on each dataset (`None` where undefined).
    fn add(
        &mut self,
        name: String,
        preds: Vec<Option<Vec<u32>>>,
        labels: &[&[i64]],
        merges: Option<usize>,
    ) {
        let acc: Vec<Option<f64>> = (preds.iter().zip(labels))
            .map(|(p, y)| p.as_ref().map(|p| accuracy(p, y)))
            .collect();
        for (per, p) in self.preds.iter_mut().zip(preds) {
            if let Some(p) = p {
                per.insert(name.clone(), p);
            }
        }
        let summary = MeanAccuracy::of(&acc);
        self.rows
            .push(Row::new(name, &self.datasets, &acc, summary, merges));
    }
}

impl<'a, E: ParamSource + ?Sized> Run<'a, E>
where
    Error: From<E::Error>,
{
    fn bar(&self, n: usize, msg: String) -> indicatif::ProgressBar {
        progress::bar(n, msg, self.config.progress)
    }

    /// `‖θ_j − θ0‖/‖θ0‖` of every model; an error names the first beyond the limit.
    fn distances(&self, names: &[String]) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        for (name, m) in names.iter().zip(&self.models) {
            let d = relative_distance(self.base, *m)?;
            let max = self.config.max_distance;
            if d.is_nan() || d > max {
                return Err(Error::invalid(
                    format!("model `{name}`"),
                    format!(
                        "lies at ‖θ − θ0‖/‖θ0‖ = {d:.3} from the base (more than --max-distance \
                         {max}): was it fine-tuned from another pre-trained model?"
                    ),
                ));
            }
            out.insert(name.clone(), d);
        }
        Ok(out)
    }

    /// Logits `[task][model]` of every fine-tuned model with each dataset's head.
    fn fine_tuned_logits(&self, names: &[String]) -> Result<Vec<Vec<Vec<f32>>>> {
        let mut out = vec![Vec::with_capacity(self.models.len()); self.tasks.len()];
        for (j, (name, m)) in names.iter().zip(&self.models).enumerate() {
            let host;
            let dev = self.on_device(Encoder::Task(j))?;
            let enc = match &dev {
                Some(f) => Enc::Device(&**f),
                None => {
                    host = encoder_of(self.base, *m)?;
                    Enc::Host(&host)
                }
            };
            for (task, per) in self.tasks.iter().zip(out.iter_mut()) {
                per.push(self.logits(&enc, task, &all(task), name)?);
            }
        }
        Ok(out)
    }

    /// `enc` prepared on the device, when there is one and it can run it.
    fn on_device(&self, enc: Encoder<'_>) -> Result<Option<Box<dyn EncoderForward + 'a>>> {
        match self.device {
            Some(d) => d.encoder(enc),
            None => Ok(None),
        }
    }

    /// Logits of the samples `idx` of `task` through `encoder` and the task's head.
    fn logits(
        &self,
        encoder: &Enc<'_>,
        task: &MtlTask<'_>,
        idx: &[usize],
        label: &str,
    ) -> Result<Vec<f32>> {
        let b = self.bar(idx.len(), format!("{label} on {}", task.name));
        let batch = self.config.batch_size;
        let f = match encoder {
            Enc::Host(e) => features(e, task.data, idx, batch, &b)?,
            Enc::Device(d) => batches(task.data, idx, batch, &b, |x, ch| {
                d.features(x, ch.len(), None)
            })?,
        };
        b.finish_and_clear();
        task_logits(task, &f)
    }

    /// Predictions of `encoder` on every dataset.
    fn predictions(&self, encoder: &Enc<'_>, label: &str) -> Result<Vec<Option<Vec<u32>>>> {
        (self.tasks.iter())
            .map(|t| {
                Ok(Some(stats::argmax(
                    &self.logits(encoder, t, &all(t), label)?,
                    task_classes(t),
                )?))
            })
            .collect()
    }

    /// Runs `method` and adds its rows to `table`.
    fn method(
        &self,
        method: MtlMethod,
        names: &[String],
        ft_logits: &[Vec<Vec<f32>>],
        arrays: &[TaskArrays],
        table: &mut Table,
    ) -> Result<()> {
        let labels: Vec<&[i64]> = self.tasks.iter().map(|t| t.data.labels()).collect();
        let argmax = |z: &[f32], t: &MtlTask<'_>| -> Result<Vec<u32>> {
            Ok(stats::argmax(z, task_classes(t))?)
        };
        let m = self.models.len();
        match method {
            MtlMethod::Individual => {
                for (j, name) in names.iter().enumerate() {
                    let preds = (self.tasks.iter().zip(ft_logits))
                        .map(|(t, z)| argmax(&z[j], t).map(Some))
                        .collect::<Result<_>>()?;
                    table.add(format!("ft:{name}"), preds, &labels, None);
                }
            }
            MtlMethod::IndividualOracle => {
                let preds = (self.tasks.iter().zip(ft_logits))
                    .map(|(t, z)| match names.iter().position(|n| *n == t.name) {
                        Some(j) => argmax(&z[j], t).map(Some),
                        None => Ok(None),
                    })
                    .collect::<Result<_>>()?;
                table.add("individual†".into(), preds, &labels, None);
            }
            MtlMethod::Base => {
                let dev = self.on_device(Encoder::Base)?;
                let enc = dev.as_deref().map_or(Enc::Host(self.base), Enc::Device);
                let preds = self.predictions(&enc, "base")?;
                table.add("base".into(), preds, &labels, None);
            }
            MtlMethod::WeightAvg | MtlMethod::TaskArithmetic | MtlMethod::Ties => {
                let w = match method {
                    MtlMethod::WeightAvg => vec![1.0 / m as f32; m],
                    _ => vec![self.config.ta_scale; m],
                };
                let ties = || {
                    let (top, scale) = (self.config.ties_top, self.config.ties_scale);
                    ties_merge(self.base, &self.models, top, scale)
                };
                let host_merge = || match method {
                    MtlMethod::Ties => ties(),
                    _ => merge_encoders(self.base, &self.models, &w),
                };
                // On the device: task arithmetic by its kernel, TIES merged on the host and
                // uploaded.
                let tied;
                let spec = match (method, self.device.is_some()) {
                    (_, false) => None,
                    (MtlMethod::Ties, true) => {
                        tied = ties()?;
                        Some(Encoder::Host(&tied))
                    }
                    (_, true) => Some(Encoder::Merged(&w)),
                };
                let dev = match spec {
                    Some(spec) => self.on_device(spec)?,
                    None => None,
                };
                let preds = match dev {
                    Some(d) => self.predictions(&Enc::Device(&*d), method.name())?,
                    None => self.predictions(&Enc::Host(&host_merge()?), method.name())?,
                };
                table.add(method.name().into(), preds, &labels, Some(1));
            }
            MtlMethod::Dawin => {
                let (mut preds, mut merges) = (Vec::new(), 0);
                for (i, (t, a)) in self.tasks.iter().zip(arrays).enumerate() {
                    let what = || format!("mixture on `{}`", t.name);
                    let cl =
                        dirichlet_clusters(&a.lambda, m, self.config.k, self.config.seed, what)?;
                    let k = cl.report.k;
                    let (z, nm) = forward_groups(&cl.assign, task_classes(t), |c, idx| {
                        let w: Vec<f32> = cl.report.means[c]
                            .iter()
                            .map(|&v| self.s * v as f32)
                            .collect();
                        let label = format!("dawin K={k}");
                        match self.on_device(Encoder::Merged(&w))? {
                            Some(d) => self.logits(&Enc::Device(&*d), t, idx, &label),
                            None => {
                                let merged = merge_encoders(self.base, &self.models, &w)?;
                                self.logits(&Enc::Host(&merged), t, idx, &label)
                            }
                        }
                    })?;
                    merges += nm;
                    table.clusters[i] = Some(cl.assign.iter().map(|&k| k as i64).collect());
                    table
                        .mixtures
                        .insert(t.name.clone(), DirichletReport::new(cl.report, &cl.assign));
                    preds.push(Some(argmax(&z, t)?));
                }
                table.add("dawin".into(), preds, &labels, Some(merges));
            }
            MtlMethod::DawinSample => {
                // On the device: the blended forward over the M + 1 arenas. On the CPU (or a
                // device that cannot run it): all M + 1 encoders stacked, read one at a time.
                let blend = match self.on_device(Encoder::Blended)? {
                    Some(d) => Blend::Device(d),
                    None => Blend::Cpu(Box::new(BlendedWeights::from_loader(
                        self.base.config(),
                        self.base.weights(),
                        m,
                        |j| Ok::<_, Error>(encoder_of(self.base, self.models[j])?.into_weights()),
                    )?)),
                };
                let mut preds = Vec::new();
                for (t, a) in self.tasks.iter().zip(arrays) {
                    let b = self.bar(t.data.len(), format!("dawin-sample on {}", t.name));
                    let co = task_weights(&a.lambda, m, self.s);
                    let batch = self.config.batch_size;
                    let f = batches(t.data, &all(t), batch, &b, |x, ch| {
                        let w = &co[ch[0] * m..(ch[0] + ch.len()) * m];
                        match &blend {
                            Blend::Device(d) => d.features(x, ch.len(), Some(w)),
                            Blend::Cpu(bw) => Ok(cpu::blended::forward(x, ch.len(), bw, w)?.1),
                        }
                    })?;
                    b.finish_and_clear();
                    preds.push(Some(argmax(&task_logits(t, &f)?, t)?));
                }
                table.add("dawin-sample".into(), preds, &labels, None);
            }
        }
        Ok(())
    }
}

/// Classes of a task's logits: its dataset's class mapping's, else its head's.
fn task_classes(task: &MtlTask<'_>) -> usize {
    classes_of(task.data, task.head.out_dim)
}

/// A task's logits of features `f`: its head `W f + b`, mapped to the dataset's classes
/// ([`map_logits`]: ImageNet-R/-A's class subsets, ObjectNet's max-pooled groups).
fn task_logits(task: &MtlTask<'_>, f: &[f32]) -> Result<Vec<f32>> {
    map_logits(
        apply_head(&task.head, f)?,
        task.head.out_dim,
        task.data.class_mapping(),
    )
}

/// Every sample index of a task's dataset.
fn all(task: &MtlTask<'_>) -> Vec<usize> {
    (0..task.data.len()).collect()
}

/// Loaded inputs of a multi-task evaluation (see [`load_mtl`]).
pub struct MtlModels {
    /// θ0's encoder (with the first head, unused).
    pub base: ClipClassifier,
    /// The named fine-tuned encoders, memory-mapped and checked against θ0's config.
    pub models: Vec<(String, CheckpointEncoder)>,
    /// The named heads.
    pub heads: Vec<(String, Linear)>,
    /// Fine-tuned models that were vision towers only (Hugging Face `CLIPVisionModel`), their
    /// projection taken from the base.
    pub vision_only: Vec<String>,
    /// The resolved architecture of the base (`"base"`) and of each fine-tuned model, every field
    /// with its source.
    pub architectures: Vec<(String, Architecture)>,
}

/// Loads the base checkpoint and the named head files, and opens the named fine-tuned
/// checkpoints (memory-mapped, their shapes checked, their own heads ignored; values are read
/// when the evaluation needs them). Every checkpoint may be in any form
/// [`dawin_vit::open_checkpoint`] reads (safetensors, `.pt`/`.pth`/`.bin` of every PyTorch kind,
/// shard indexes, directories) and every head in any form [`load_head`] reads (a pickled
/// `ClassificationHead`, a state dict, safetensors); each architecture is resolved with `opts`
/// and the config files beside it ([`dawin_vit::arch`]) and must agree with the base's. A
/// Hugging Face vision tower without `visual_projection.weight` (`CLIPVisionModel`) gets the
/// base's projection. Errors name the file: a head whose width differs from the encoder's
/// embedding or whose `normalize` is false (the multi-task path applies heads to normalised
/// features), a fine-tuned checkpoint whose tensors or resolved architecture differ from the
/// base's, unused tensors (unless `opts.ignore_unused`), a missing file.
pub fn load_mtl(
    base: &Path,
    models: &[(String, PathBuf)],
    heads: &[(String, PathBuf)],
    opts: &LoadOptions,
) -> Result<MtlModels> {
    if heads.is_empty() {
        return Err(Error::invalid("--head", "at least one head is required"));
    }
    let mut loaded_heads = Vec::new();
    for (name, p) in heads {
        let h = load_head(p)?;
        if !h.normalize.value {
            return Err(Error::invalid(
                format!("head `{name}` ({})", p.display()),
                format!(
                    "has normalize = false ({}): the multi-task evaluation applies every head \
                     to L2-normalised features (normalize = true, CLIP's convention)",
                    h.normalize.source
                ),
            ));
        }
        loaded_heads.push((name.clone(), h));
    }
    let bck = open_checkpoint(base)?;
    if let Some(e) = embed_width(&bck) {
        for ((name, h), (_, p)) in loaded_heads.iter().zip(heads) {
            if h.in_dim() != e {
                return Err(Error::invalid(
                    format!("head `{name}` ({})", p.display()),
                    format!(
                        "has input width {} ([{}, {}]), the encoder {} embeds to {e}",
                        h.in_dim(),
                        h.num_classes(),
                        h.in_dim(),
                        base.display()
                    ),
                ));
            }
        }
    }
    let arch = resolve_checkpoint(&bck, Some(&loaded_heads[0].1), opts)
        .map_err(|e| Error::invalid(format!("base {}", base.display()), e.to_string()))?;
    let opened = Opened {
        checkpoint: bck,
        head: Some(loaded_heads[0].1.clone()),
        arch,
    };
    let (b, warning) = opened
        .load(opts.ignore_unused)
        .map_err(|e| Error::invalid(format!("base {}", base.display()), e.to_string()))?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    let mut architectures = vec![(
        "base".to_string(),
        b.architecture().cloned().expect("loaded from a file"),
    )];
    let mut ms = Vec::new();
    let mut vision_only = Vec::new();
    for (name, p) in models {
        let what = || format!("model `{name}` ({})", p.display());
        let (ck, completed) = complete_vision_tower(open_checkpoint(p)?, &b)?;
        if completed {
            vision_only.push(name.clone());
        }
        let mut arch = resolve_checkpoint(&ck, Some(&loaded_heads[0].1), opts)
            .map_err(|e| Error::invalid(what(), e.to_string()))?;
        arch.inherit_from(&architectures[0].1)
            .map_err(|e| Error::invalid(what(), e.to_string()))?;
        if let Some(w) = arch
            .check_unused(opts.ignore_unused)
            .map_err(|e| Error::invalid(what(), e.to_string()))?
        {
            eprintln!("warning: {w}");
        }
        architectures.push((name.clone(), arch));
        let c = CheckpointEncoder::new(ck, b.config().clone(), &b.weights().head).map_err(|e| {
            Error::invalid(
                what(),
                format!("does not match the base {}: {e}", base.display()),
            )
        })?;
        ms.push((name.clone(), c));
    }
    Ok(MtlModels {
        base: b,
        models: ms,
        heads: loaded_heads
            .into_iter()
            .map(|(n, h)| (n, h.linear))
            .collect(),
        vision_only,
        architectures,
    })
}
