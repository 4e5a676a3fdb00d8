//! Random byte mutations (flips, truncations, insertions, overwrites with pickle opcodes) of the
//! PyTorch fixtures: the reader returns a checkpoint or an error, never panics, and its peak heap
//! use stays below 16 × the file size + 8 MiB. Peak heap is measured by a counting global
//! allocator (`TORCH_MUTATION_CASES` sets the number of cases, 1024 by default); the tests of this binary run one at a time (a lock) so that nothing else
//! allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use proptest::prelude::*;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), SeqCst) + l.size();
            PEAK.fetch_max(now, SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), SeqCst);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                let now = CURRENT.fetch_add(new - l.size(), SeqCst) + new - l.size();
                PEAK.fetch_max(now, SeqCst);
            } else {
                CURRENT.fetch_sub(l.size() - new, SeqCst);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const FACTOR: usize = 16;
const SLACK: usize = 8 << 20;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/torch")
            .join(name),
    )
    .unwrap()
}

/// Opens `path` and reads every tensor; returns the peak heap growth in bytes.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open_and_read(path: &std::path::Path) -> (usize, bool) {
    let base = CURRENT.load(SeqCst);
    PEAK.store(base, SeqCst);
    let ok = match dawin_core::torch::open_torch(path) {
        Ok(c) => {
            for t in c.tensors() {
                std::hint::black_box(t.to_f32_vec());
            }
            true
        }
        Err(e) => {
            // Every error names the file.
            let s = e.to_string();
            assert!(
                s.contains(path.file_name().unwrap().to_str().unwrap()),
                "{s}"
            );
            false
        }
    };
    (PEAK.load(SeqCst).saturating_sub(base), ok)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    /// A flip in the last 128 bytes (a zip's central directory and end record).
    TailFlip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    /// Overwrite with an opcode that takes a length (BINBYTES, LONG4, BINUNICODE, …) and a large
    /// length, or a container/memo opcode.
    Opcode(usize, u8, u32),
}

fn apply(data: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut d = data.to_vec();
    for m in muts {
        let n = d.len().max(1);
        match m {
            Mutation::Flip(i, x) => {
                if !d.is_empty() {
                    let i = i % n;
                    d[i] ^= x | 1;
                }
            }
            Mutation::TailFlip(i, x) => {
                if !d.is_empty() {
                    let i = n - 1 - i % n.min(128);
                    d[i] ^= x | 1;
                }
            }
            Mutation::Truncate(i) => d.truncate(i % n),
            Mutation::Insert(i, b) => {
                let i = i % (d.len() + 1);
                d.splice(i..i, b.iter().copied());
            }
            Mutation::Opcode(i, op, len) => {
                let i = i % n;
                let mut b = vec![*op];
                b.extend_from_slice(&len.to_le_bytes());
                for (k, x) in b.into_iter().enumerate() {
                    if let Some(slot) = d.get_mut(i + k) {
                        *slot = x;
                    }
                }
            }
        }
    }
    d
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let ops = prop::sample::select(vec![
        b'B', 0x8b, b'X', 0x8d, 0x8e, b'T', b'(', b')', b']', b'}', b'e', b'u', b'h', b'j', b'q',
        b'r', b'R', 0x81, b'b', b'Q', b't', 0x93, b'.', 0x95,
    ]);
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Flip(i, x)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::TailFlip(i, x)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        3 => (any::<usize>(), ops, prop_oneof![Just(u32::MAX), Just(1 << 30), 0u32..4096])
            .prop_map(|(i, o, l)| Mutation::Opcode(i, o, l)),
    ]
}

#[test]
fn mutated_fixtures_give_errors_not_panics_within_the_memory_bound() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let names = [
        "strided.pkl",
        "strided_legacy.pt",
        "strided.pt",
        "strided_deflated.pt",
        "head_Tiny.pt",
        "jit_no_tensors.pt",
        "evil_zip.pt",
        "sd_bf16_legacy.pt",
    ];
    let files: Vec<(&str, Vec<u8>)> = names.iter().map(|n| (*n, fixture(n))).collect();
    let dir = tempfile::tempdir().unwrap();
    // The unmutated files first: they must open, within the same bound.
    for (name, data) in &files {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        let (peak, ok) = open_and_read(&p);
        assert!(ok || name.starts_with("jit_no"), "{name} must open");
        println!("{name}: {} bytes, peak heap {peak} bytes", data.len());
        assert!(
            peak <= FACTOR * data.len() + SLACK,
            "{name}: peak {peak} bytes"
        );
    }
    let n_files = files.len();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: std::env::var("TORCH_MUTATION_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let (opened, refused) = (std::cell::Cell::new(0usize), std::cell::Cell::new(0usize));
    let worst = std::cell::Cell::new(0f64);
    let worst_ratio = std::cell::Cell::new(0f64);
    runner
        .run(
            &(0..n_files, prop::collection::vec(mutation(), 1..4)),
            |(which, muts)| {
                let (name, data) = &files[which];
                let bytes = apply(data, &muts);
                let p = dir.path().join(format!("m_{name}"));
                std::fs::write(&p, &bytes).unwrap();
                let (peak, ok) = open_and_read(&p);
                let counter = if ok { &opened } else { &refused };
                counter.set(counter.get() + 1);
                let bound = FACTOR * bytes.len() + SLACK;
                worst.set(worst.get().max(peak as f64 / bound as f64));
                worst_ratio.set(
                    worst_ratio
                        .get()
                        .max(peak as f64 / bytes.len().max(1) as f64),
                );
                prop_assert!(peak <= bound, "{name} {muts:?}: peak {peak} > {bound}");
                Ok(())
            },
        )
        .unwrap();
    println!(
        "mutations: {} opened, {} refused; worst peak = {:.1}% of the bound, 64 KiB + {:.2}× the file size",
        opened.get(),
        refused.get(),
        worst.get() * 100.0,
        worst_ratio.get()
    );
    let refused = refused.get();
    assert!(
        refused > 100,
        "the mutations must exercise error paths ({refused} refused)"
    );
}

#[test]
fn opcode_floods_hit_the_budget_not_the_machine() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let n = 2 << 20;
    // 2 Mi NONEs: 48 MiB of values on the stack if nothing stopped them.
    let mut nones = vec![0x80, 0x02];
    nones.extend(std::iter::repeat_n(b'N', n));
    nones.push(b'.');
    // 2 Mi nested lists appended into each other: deep, never recursed into when dropped.
    let mut nested = vec![0x80, 0x02];
    nested.extend(std::iter::repeat_n(b']', n / 2));
    nested.extend(std::iter::repeat_n(b'a', n / 2 - 1));
    nested.push(b'.');
    for (name, bytes) in [("nones.pkl", nones), ("nested.pkl", nested)] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let (peak, ok) = open_and_read(&p);
        assert!(!ok, "{name}");
        println!("{name}: {} bytes, peak heap {peak} bytes", bytes.len());
        assert!(peak <= FACTOR * bytes.len() + SLACK, "{name}: peak {peak}");
    }
}
