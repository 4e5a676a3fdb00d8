//! The kernel-source registry: which `.cu` file holds which kernels, with their exact C
//! signatures, the PTX shipped for them, and how that PTX is generated.
//!
//! Kernel arguments are untyped at a CUDA launch: the driver copies as many bytes as the PTX
//! declares for each parameter. The argument lists below are the single place where the Rust
//! side writes down what each kernel takes; launches are checked against them argument by
//! argument ([`crate::Gpu`] refuses a launch that does not match), and a CPU test checks them
//! against the `.cu` sources and the `.entry` declarations of the shipped PTX.

/// Maximum number of outputs of one `multi_lerp_*` launch (`DAWIN_MAX_OUTPUTS` in `merge.cu`).
/// [`crate::Gpu::multi_lerp`] splits larger requests into launches of this many outputs.
pub const MAX_OUTPUTS: usize = 16;

/// Maximum number of fine-tuned models of one `task_arith_*` launch (`DAWIN_MAX_MODELS` in
/// `merge.cu`).
pub const MAX_MODELS: usize = 32;

/// The virtual architecture the shipped PTX is generated for. PTX for `compute_70` is
/// JIT-compiled by the driver for every GPU from Volta (sm_70) on, Ampere and Hopper included.
pub const SHIPPED_ARCH: &str = "compute_70";

/// The virtual architecture of the transformer kernels (`gemm.cu`, `attention.cu`, `norm.cu`,
/// `embed.cu`): the GEMM's tensor-core `mma.sync.m16n8k16` with f16 and bf16 inputs needs sm_80
/// (Ampere, Ada, Hopper), and the others, which only run beside it, are compiled for it too.
pub const SM80_ARCH: &str = "compute_80";

/// Maximum number of parameter sets of one blended launch (`DAWIN_MAX_SETS` in `blend.cuh`):
/// the base model and up to 7 others.
pub const MAX_SETS: usize = 8;

/// NVRTC options used for the shipped PTX (the run-time compile uses the same options with the
/// device's own architecture).
pub const NVRTC_OPTIONS: &[&str] = &["--gpu-architecture=compute_70"];

/// The NVRTC release that generated the shipped PTX (pinned in `scripts/check_kernels.sh`).
pub const SHIPPED_NVRTC: &str = "12.4";

/// The oldest driver that loads the shipped PTX (PTX ISA 8.4 needs a CUDA 12.4 driver).
pub const SHIPPED_MIN_DRIVER: &str = "R550 (Linux >= 550.54.14, Windows >= 551.61; CUDA 12.4)";

/// How one kernel argument is passed: its C type, as PTX declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A device pointer (`const float*`, `u16*`, ...): 8 bytes, `.param .u64`.
    Ptr,
    /// `unsigned int`: `.param .u32`.
    U32,
    /// `unsigned long long`: `.param .u64`.
    U64,
    /// `float`: `.param .f32`.
    F32,
    /// A struct passed by value: `.param .align A .b8 name[size]`.
    Struct {
        /// C name of the struct.
        name: &'static str,
        /// `sizeof`.
        size: usize,
        /// `alignof`.
        align: usize,
    },
}

impl ArgKind {
    /// The parameter declaration NVRTC writes for this argument, without its name, e.g.
    /// `.u64` or `.align 8 .b8 [200]`.
    pub fn ptx_decl(&self) -> String {
        match self {
            ArgKind::Ptr | ArgKind::U64 => ".u64".to_string(),
            ArgKind::U32 => ".u32".to_string(),
            ArgKind::F32 => ".f32".to_string(),
            ArgKind::Struct { size, align, .. } => format!(".align {align} .b8 [{size}]"),
        }
    }
}

/// `struct MultiLerpParams` of `merge.cu`: `u64 out[16]; float lambda[16]; u32 k; u32 pad;`.
pub const MULTI_LERP_PARAMS: ArgKind = ArgKind::Struct {
    name: "MultiLerpParams",
    size: MAX_OUTPUTS * 8 + MAX_OUTPUTS * 4 + 8,
    align: 8,
};

/// `struct TaskArithParams` of `merge.cu`: `u64 model[32]; float weight[32]; u32 m; u32 pad;`.
pub const TASK_ARITH_PARAMS: ArgKind = ArgKind::Struct {
    name: "TaskArithParams",
    size: MAX_MODELS * 8 + MAX_MODELS * 4 + 8,
    align: 8,
};

/// One kernel: its name, its C signature exactly as in the `.cu` file, and its arguments.
#[derive(Clone, Copy, Debug)]
pub struct KernelSig {
    /// Entry-point name (`extern "C"`).
    pub name: &'static str,
    /// `void name(...)` exactly as written after `extern "C" __global__ ` in the source.
    pub c_signature: &'static str,
    /// The arguments, in order.
    pub args: &'static [ArgKind],
}

/// One `.cu` file of `kernels/`.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    /// File name inside `kernels/`, e.g. `merge.cu`.
    pub file: &'static str,
    /// The CUDA source (embedded at build time).
    pub source: &'static str,
    /// The PTX shipped with the crate (`crates/dawin-kernels/ptx/<stem>.ptx`).
    pub shipped_ptx: &'static str,
    /// The virtual architecture the shipped PTX is generated for: [`SHIPPED_ARCH`], or
    /// [`SM80_ARCH`] for the transformer kernels (the tensor-core `mma` of sm_80). A device of a lower
    /// compute capability does not load this file's kernels.
    pub arch: &'static str,
    /// The kernels this file defines.
    pub kernels: &'static [KernelSig],
}

impl KernelSource {
    /// File stem, e.g. `merge` for `merge.cu`; the shipped PTX is `ptx/<stem>.ptx`.
    pub fn stem(&self) -> &'static str {
        self.file.strip_suffix(".cu").unwrap_or(self.file)
    }

    /// The headers of [`HEADERS`] this source includes (`#include "name"`), in include order.
    pub fn headers(&self) -> Vec<&'static KernelHeader> {
        included_headers(self.source)
    }

    /// FNV-1a 64 hash of the source followed by the name and text of every header it includes,
    /// with carriage returns removed (so that a checkout with CRLF line endings hashes the
    /// same): editing a header makes the PTX of every file that includes it stale.
    pub fn source_hash(&self) -> u64 {
        let mut bytes: Vec<u8> = self.source.bytes().collect();
        for h in self.headers() {
            bytes.extend(h.name.bytes());
            bytes.extend(h.source.bytes());
        }
        fnv1a64(bytes.into_iter().filter(|&b| b != b'\r'))
    }

    /// The source hash recorded in the header of the shipped PTX, if any.
    pub fn shipped_source_hash(&self) -> Option<u64> {
        recorded_source_hash(self.shipped_ptx)
    }

    /// True when the shipped PTX was generated from the current source (and headers).
    pub fn shipped_ptx_is_current(&self) -> bool {
        self.shipped_source_hash() == Some(self.source_hash())
    }
}

/// A header of `kernels/` that kernel sources include by name (`#include "half_types.cuh"`).
/// NVRTC has no file system: it receives every header's text under its name
/// (`nvrtcCreateProgram`'s `headers` / `includeNames`); the host emulation includes the file.
#[derive(Clone, Copy, Debug)]
pub struct KernelHeader {
    /// File name inside `kernels/`, as the sources include it.
    pub name: &'static str,
    /// The header's text (embedded at build time).
    pub source: &'static str,
}

/// `kernels/half_types.cuh`: integer typedefs, f16/bf16 conversions and the element structs.
pub const HALF_TYPES: KernelHeader = KernelHeader {
    name: "half_types.cuh",
    source: include_str!("../kernels/half_types.cuh"),
};

/// `kernels/blend.cuh`: [`MAX_SETS`] and the per-row blend coefficients of blended launches.
pub const BLEND: KernelHeader = KernelHeader {
    name: "blend.cuh",
    source: include_str!("../kernels/blend.cuh"),
};

/// Every header a kernel source may include.
pub const HEADERS: &[KernelHeader] = &[HALF_TYPES, BLEND];

/// The headers of [`HEADERS`] that `source` includes with `#include "name"`, in include order
/// (each once).
fn included_headers(source: &str) -> Vec<&'static KernelHeader> {
    let mut out: Vec<&'static KernelHeader> = Vec::new();
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("#include") else {
            continue;
        };
        let name = rest.trim().trim_matches('"');
        if let Some(h) = HEADERS.iter().find(|h| h.name == name) {
            if !out.iter().any(|o| o.name == h.name) {
                out.push(h);
            }
        }
    }
    out
}

use ArgKind::{Ptr, F32, U32, U64};

macro_rules! lerp_sig {
    ($name:literal, $t:literal) => {
        KernelSig {
            name: $name,
            c_signature: concat!(
                "void ",
                $name,
                "(const ",
                $t,
                "* a, const ",
                $t,
                "* b, float lambda, ",
                $t,
                "* out, u64 n)"
            ),
            args: &[Ptr, Ptr, F32, Ptr, U64],
        }
    };
}

macro_rules! multi_lerp_sig {
    ($name:literal, $t:literal) => {
        KernelSig {
            name: $name,
            c_signature: concat!(
                "void ",
                $name,
                "(const ",
                $t,
                "* a, const ",
                $t,
                "* b, const __grid_constant__ MultiLerpParams p, u64 n)"
            ),
            args: &[Ptr, Ptr, MULTI_LERP_PARAMS, U64],
        }
    };
}

macro_rules! task_arith_sig {
    ($name:literal, $t:literal) => {
        KernelSig {
            name: $name,
            c_signature: concat!(
                "void ",
                $name,
                "(const ",
                $t,
                "* base, const __grid_constant__ TaskArithParams p, ",
                $t,
                "* out, u64 n)"
            ),
            args: &[Ptr, TASK_ARITH_PARAMS, Ptr, U64],
        }
    };
}

macro_rules! cast_sig {
    ($name:literal, $s:literal, $d:literal) => {
        KernelSig {
            name: $name,
            c_signature: concat!(
                "void ",
                $name,
                "(const ",
                $s,
                "* src, ",
                $d,
                "* dst, u64 n)"
            ),
            args: &[Ptr, Ptr, U64],
        }
    };
}

/// `kernels/merge.cu`: lerp, multi-lerp, task arithmetic and casts.
pub const MERGE: KernelSource = KernelSource {
    file: "merge.cu",
    source: include_str!("../kernels/merge.cu"),
    shipped_ptx: include_str!("../ptx/merge.ptx"),
    arch: SHIPPED_ARCH,
    kernels: &[
        lerp_sig!("lerp_f32", "float"),
        lerp_sig!("lerp_f16", "u16"),
        lerp_sig!("lerp_bf16", "u16"),
        multi_lerp_sig!("multi_lerp_f32", "float"),
        multi_lerp_sig!("multi_lerp_f16", "u16"),
        multi_lerp_sig!("multi_lerp_bf16", "u16"),
        task_arith_sig!("task_arith_f32", "float"),
        task_arith_sig!("task_arith_f16", "u16"),
        task_arith_sig!("task_arith_bf16", "u16"),
        cast_sig!("cast_f32_f16", "float", "u16"),
        cast_sig!("cast_f32_bf16", "float", "u16"),
        cast_sig!("cast_f16_f32", "u16", "float"),
        cast_sig!("cast_bf16_f32", "u16", "float"),
        cast_sig!("cast_f16_bf16", "u16", "u16"),
        cast_sig!("cast_bf16_f16", "u16", "u16"),
    ],
};

/// `kernels/row_stats.cu`: per-row statistics and cross-entropy of a logits matrix.
pub const ROW_STATS: KernelSource = KernelSource {
    file: "row_stats.cu",
    source: include_str!("../kernels/row_stats.cu"),
    shipped_ptx: include_str!("../ptx/row_stats.ptx"),
    arch: SHIPPED_ARCH,
    kernels: &[KernelSig {
        name: "row_stats_f32",
        c_signature: "void row_stats_f32(const float* logits, u32 n_rows, u32 n_cols, \
                      float temperature, const long long* labels, RowStatsOut* out)",
        args: &[Ptr, U32, U32, F32, Ptr, Ptr],
    }],
};

/// `struct GemmParams` of `gemm.cu` (264 bytes).
pub const GEMM_PARAMS: ArgKind = ArgKind::Struct {
    name: "GemmParams",
    size: 8 + 3 * MAX_SETS * 8 + 3 * 8 + 10 * 4,
    align: 8,
};

/// `struct LayerNormParams` of `norm.cu` (184 bytes).
pub const LAYER_NORM_PARAMS: ArgKind = ArgKind::Struct {
    name: "LayerNormParams",
    size: 2 * 8 + 2 * MAX_SETS * 8 + 8 + 8 * 4,
    align: 8,
};

/// `struct EmbedParams` of `embed.cu` (168 bytes).
pub const EMBED_PARAMS: ArgKind = ArgKind::Struct {
    name: "EmbedParams",
    size: 2 * 8 + 2 * MAX_SETS * 8 + 8 + 4 * 4,
    align: 8,
};

macro_rules! struct_sig {
    ($name:literal, $s:literal, $kind:expr) => {
        KernelSig {
            name: $name,
            c_signature: concat!("void ", $name, "(const __grid_constant__ ", $s, " p)"),
            args: &[$kind],
        }
    };
}

/// `kernels/gemm.cu`: the tensor-core GEMM with fused epilogues (bias, QuickGELU or exact GELU,
/// LayerScale, residual) and
/// its blended form over up to [`MAX_SETS`] weight sets, with `ldmatrix` or 32-bit fragment
/// loads (`_lds`), f16 and bf16.
pub const GEMM: KernelSource = KernelSource {
    file: "gemm.cu",
    source: include_str!("../kernels/gemm.cu"),
    shipped_ptx: include_str!("../ptx/gemm.ptx"),
    arch: SM80_ARCH,
    kernels: &[
        struct_sig!("gemm_f16", "GemmParams", GEMM_PARAMS),
        struct_sig!("gemm_bf16", "GemmParams", GEMM_PARAMS),
        struct_sig!("gemm_lds_f16", "GemmParams", GEMM_PARAMS),
        struct_sig!("gemm_lds_bf16", "GemmParams", GEMM_PARAMS),
        struct_sig!("gemm_blend_f16", "GemmParams", GEMM_PARAMS),
        struct_sig!("gemm_blend_bf16", "GemmParams", GEMM_PARAMS),
        struct_sig!("gemm_blend_lds_f16", "GemmParams", GEMM_PARAMS),
        struct_sig!("gemm_blend_lds_bf16", "GemmParams", GEMM_PARAMS),
    ],
};

macro_rules! attention_sig {
    ($name:literal) => {
        KernelSig {
            name: $name,
            c_signature: concat!(
                "void ",
                $name,
                "(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale)"
            ),
            args: &[Ptr, Ptr, U32, U32, U32, U32, F32],
        }
    };
}

/// `kernels/attention.cu`: multi-head attention, f16 and bf16, for head dims ≤ 64
/// (`attention_*`) and 65 ..= 128 (`attention_wide_*`).
pub const ATTENTION: KernelSource = KernelSource {
    file: "attention.cu",
    source: include_str!("../kernels/attention.cu"),
    shipped_ptx: include_str!("../ptx/attention.ptx"),
    arch: SM80_ARCH,
    kernels: &[
        attention_sig!("attention_f16"),
        attention_sig!("attention_bf16"),
        attention_sig!("attention_wide_f16"),
        attention_sig!("attention_wide_bf16"),
    ],
};

/// `kernels/norm.cu`: layer norm (blended over up to [`MAX_SETS`] parameter sets) and L2
/// normalisation of rows, f16 and bf16.
pub const NORM: KernelSource = KernelSource {
    file: "norm.cu",
    source: include_str!("../kernels/norm.cu"),
    shipped_ptx: include_str!("../ptx/norm.ptx"),
    arch: SM80_ARCH,
    kernels: &[
        struct_sig!("layer_norm_f16", "LayerNormParams", LAYER_NORM_PARAMS),
        struct_sig!("layer_norm_bf16", "LayerNormParams", LAYER_NORM_PARAMS),
        KernelSig {
            name: "l2_normalize_f16",
            c_signature:
                "void l2_normalize_f16(const float* x, float* feats, u16* out, u32 rows, u32 d)",
            args: &[Ptr, Ptr, Ptr, U32, U32],
        },
        KernelSig {
            name: "l2_normalize_bf16",
            c_signature:
                "void l2_normalize_bf16(const float* x, float* feats, u16* out, u32 rows, u32 d)",
            args: &[Ptr, Ptr, Ptr, U32, U32],
        },
    ],
};

/// `kernels/embed.cu`: im2col of images into patch rows and the class and positional
/// embeddings (blended over up to [`MAX_SETS`] parameter sets), f16 and bf16.
pub const EMBED: KernelSource = KernelSource {
    file: "embed.cu",
    source: include_str!("../kernels/embed.cu"),
    shipped_ptx: include_str!("../ptx/embed.ptx"),
    arch: SM80_ARCH,
    kernels: &[
        KernelSig {
            name: "im2col_f16",
            c_signature:
                "void im2col_f16(const float* img, u16* out, u32 batch, u32 size, u32 ps, u32 ld)",
            args: &[Ptr, Ptr, U32, U32, U32, U32],
        },
        KernelSig {
            name: "im2col_bf16",
            c_signature:
                "void im2col_bf16(const float* img, u16* out, u32 batch, u32 size, u32 ps, u32 ld)",
            args: &[Ptr, Ptr, U32, U32, U32, U32],
        },
        struct_sig!("embed_tokens_f16", "EmbedParams", EMBED_PARAMS),
        struct_sig!("embed_tokens_bf16", "EmbedParams", EMBED_PARAMS),
    ],
};

/// Every kernel source of the crate.
pub const SOURCES: &[KernelSource] = &[MERGE, ROW_STATS, GEMM, ATTENTION, NORM, EMBED];

/// Looks a kernel up by name.
pub fn find_kernel(name: &str) -> Option<(&'static KernelSource, &'static KernelSig)> {
    SOURCES
        .iter()
        .find_map(|s| s.kernels.iter().find(|k| k.name == name).map(|k| (s, k)))
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const HASH_TAG: &str = "// source fnv1a64: ";

/// The comment lines put in front of NVRTC's output in a shipped PTX file.
pub fn ptx_header(src: &KernelSource, nvrtc_version: (i32, i32)) -> String {
    format!(
        "// dawin-kernels: PTX of kernels/{file}, generated with\n\
         //   cargo run -p dawin-kernels --example gen_ptx\n\
         // Do not edit: scripts/check_kernels.sh regenerates it and fails when it differs.\n\
         {HASH_TAG}{hash:016x}\n\
         // nvrtc {major}.{minor}, options: {opts}\n",
        file = src.file,
        hash = src.source_hash(),
        major = nvrtc_version.0,
        minor = nvrtc_version.1,
        opts = NVRTC_OPTIONS
            .iter()
            .map(|o| {
                if o.starts_with("--gpu-architecture=") {
                    format!("--gpu-architecture={}", src.arch)
                } else {
                    (*o).to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn recorded_source_hash(ptx: &str) -> Option<u64> {
    ptx.lines()
        .take(16)
        .find_map(|l| l.strip_prefix(HASH_TAG))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
}

/// The `.version` (PTX ISA) of a PTX text, e.g. `8.4`.
pub fn ptx_isa_version(ptx: &str) -> Option<&str> {
    ptx.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(".version"))
        .map(str::trim)
}

/// The entry points of a PTX text with their parameter declarations (without names), e.g.
/// `("lerp_f16", [".u64", ".u64", ".f32", ".u64", ".u64"])`.
pub fn ptx_entries(ptx: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = ptx.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix(".visible .entry ") else {
            continue;
        };
        let name = rest.trim_end_matches('(').trim().to_string();
        let mut params = Vec::new();
        for p in lines.by_ref() {
            let p = p.trim();
            if p.starts_with(')') {
                break;
            }
            let decl = p.trim_end_matches(',').trim_start_matches(".param").trim();
            // Drop the parameter name: `.u64 lerp_f16_param_0` -> `.u64`,
            // `.align 8 .b8 x_param_2[200]` -> `.align 8 .b8 [200]`.
            let tag = format!("{name}_param_");
            let decl = match decl.find(&tag) {
                Some(pos) => {
                    let after = &decl[pos + tag.len()..];
                    let suffix = after.trim_start_matches(|c: char| c.is_ascii_digit());
                    format!("{}{}", &decl[..pos], suffix).trim().to_string()
                }
                None => decl.to_string(),
            };
            params.push(decl);
        }
        out.push((name, params));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squash(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn every_signature_is_written_as_in_the_source() {
        for src in SOURCES {
            let text = squash(src.source);
            for k in src.kernels {
                let decl = format!("extern \"C\" __global__ {}", squash(k.c_signature));
                assert!(
                    text.contains(&decl),
                    "{}: `{decl}` not found in the source",
                    src.file
                );
            }
            let n_entries = text.matches("extern \"C\" __global__").count();
            assert_eq!(
                n_entries,
                src.kernels.len(),
                "{}: the registry lists {} kernels, the source defines {n_entries}",
                src.file,
                src.kernels.len()
            );
        }
    }

    #[test]
    fn argument_lists_match_the_c_signatures() {
        for src in SOURCES {
            for k in src.kernels {
                let inner = k
                    .c_signature
                    .split_once('(')
                    .and_then(|(_, r)| r.strip_suffix(')'))
                    .unwrap();
                let c_args: Vec<&str> = inner.split(',').map(str::trim).collect();
                assert_eq!(c_args.len(), k.args.len(), "{}", k.name);
                for (c, kind) in c_args.iter().zip(k.args) {
                    let ok = match kind {
                        Ptr => c.contains('*'),
                        U32 => c.starts_with("u32 "),
                        U64 => c.starts_with("u64 "),
                        F32 => c.starts_with("float ") && !c.contains('*'),
                        ArgKind::Struct { name, .. } => {
                            c.starts_with(&format!("const __grid_constant__ {name} "))
                        }
                    };
                    assert!(ok, "{}: C argument `{c}` is not {kind:?}", k.name);
                }
            }
        }
    }

    #[test]
    fn shipped_ptx_declares_exactly_the_registered_parameters() {
        for src in SOURCES {
            let entries = ptx_entries(src.shipped_ptx);
            assert_eq!(
                entries.len(),
                src.kernels.len(),
                "{}: PTX has {} entries",
                src.file,
                entries.len()
            );
            for k in src.kernels {
                let (_, params) = entries
                    .iter()
                    .find(|(n, _)| n == k.name)
                    .unwrap_or_else(|| panic!("{} missing from {}.ptx", k.name, src.stem()));
                let want: Vec<String> = k.args.iter().map(ArgKind::ptx_decl).collect();
                assert_eq!(params, &want, "{}", k.name);
            }
        }
    }

    #[test]
    fn shipped_ptx_is_generated_from_the_current_sources() {
        for src in SOURCES {
            assert!(
                src.shipped_ptx_is_current(),
                "ptx/{}.ptx was generated from another version of kernels/{} \
                 (recorded hash {:x?}, source hash {:016x}): run \
                 `cargo run -p dawin-kernels --example gen_ptx` with NVRTC {SHIPPED_NVRTC}",
                src.stem(),
                src.file,
                src.shipped_source_hash(),
                src.source_hash()
            );
            assert_eq!(
                ptx_isa_version(src.shipped_ptx),
                Some("8.4"),
                "NVRTC {SHIPPED_NVRTC} writes PTX ISA 8.4; the README names the driver for it"
            );
        }
    }

    #[test]
    fn kernel_names_are_unique_and_found() {
        let mut names: Vec<&str> = SOURCES
            .iter()
            .flat_map(|s| s.kernels.iter().map(|k| k.name))
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(find_kernel("lerp_bf16").unwrap().0.file, "merge.cu");
        assert_eq!(find_kernel("row_stats_f32").unwrap().0.file, "row_stats.cu");
        assert!(find_kernel("lerp_f64").is_none());
    }

    #[test]
    fn parameter_structs_match_the_c_defines() {
        let text = MERGE.source;
        assert!(text.contains(&format!("#define DAWIN_MAX_OUTPUTS {MAX_OUTPUTS}\n")));
        assert!(text.contains(&format!("#define DAWIN_MAX_MODELS {MAX_MODELS}\n")));
        assert!(BLEND
            .source
            .contains(&format!("#define DAWIN_MAX_SETS {MAX_SETS}\n")));
        assert_eq!(MULTI_LERP_PARAMS.ptx_decl(), ".align 8 .b8 [200]");
        assert_eq!(GEMM_PARAMS.ptx_decl(), ".align 8 .b8 [264]");
        assert_eq!(LAYER_NORM_PARAMS.ptx_decl(), ".align 8 .b8 [184]");
        assert_eq!(EMBED_PARAMS.ptx_decl(), ".align 8 .b8 [168]");
        assert_eq!(TASK_ARITH_PARAMS.ptx_decl(), ".align 8 .b8 [392]");
    }

    #[test]
    fn fnv_and_header_round_trip() {
        // FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(*b"foobar"), 0x8594_4171_f739_67e8);
        let header = ptx_header(&MERGE, (12, 4));
        assert_eq!(recorded_source_hash(&header), Some(MERGE.source_hash()));
        assert!(header.lines().all(|l| l.starts_with("//")));
    }

    #[test]
    fn every_include_is_a_registered_header_and_changes_the_hash() {
        for src in SOURCES {
            for line in src.source.lines() {
                if let Some(rest) = line.trim().strip_prefix("#include") {
                    let name = rest.trim().trim_matches('"');
                    assert!(
                        HEADERS.iter().any(|h| h.name == name),
                        "{}: `{name}` is not in HEADERS (NVRTC would not find it)",
                        src.file
                    );
                }
            }
            assert!(
                src.headers().iter().any(|h| h.name == "half_types.cuh"),
                "{} does not include half_types.cuh",
                src.file
            );
        }
        // The hash covers the header: the same source with another header text differs.
        let plain = fnv1a64(MERGE.source.bytes().filter(|&b| b != b'\r'));
        assert_ne!(MERGE.source_hash(), plain);
        // No header defines a kernel.
        for h in HEADERS {
            assert!(!h.source.contains("__global__"), "{}", h.name);
        }
    }

    #[test]
    fn ptx_entry_parser() {
        let ptx = ".visible .entry k(\n\t.param .u64 k_param_0,\n\t.param .align 8 .b8 \
                   k_param_1[200],\n\t.param .f32 k_param_12\n)\n{\n}\n";
        assert_eq!(
            ptx_entries(ptx),
            vec![(
                "k".to_string(),
                vec![
                    ".u64".to_string(),
                    ".align 8 .b8 [200]".to_string(),
                    ".f32".to_string()
                ]
            )]
        );
    }
}
