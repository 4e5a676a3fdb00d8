//! The pipelined data path: batches loaded one step ahead of the forward.
//!
//! ```text
//! loader thread:  load b0 │ load b1 │ load b2 │ load b3 │ …       (Dataset::load_into: decoding on
//! caller:                 │ f(b0)   │ f(b1)   │ f(b2)   │ …        the dataset's worker pool)
//! ```
//!
//! The loader runs ahead of the caller by at most [`PREFETCH_DEPTH`] batches (a bounded channel),
//! so at most `PREFETCH_DEPTH + 2` batch buffers exist at once (one being filled, the queued ones,
//! one being consumed) whatever the dataset's size; buffers the caller is done with go back to
//! the loader and are reused. Batches reach the caller in order.
use super::Dataset;
use crate::error::{Error, Result};
use std::sync::mpsc::{channel, sync_channel};

/// Batches the loader may hold ready ahead of the one the caller is working on.
pub const PREFETCH_DEPTH: usize = 1;

/// Calls `f(x, chunk)` on consecutive chunks of `idx` of up to `batch` indices, in order, `x`
/// being the chunk's inputs `[chunk.len(), sample_numel]` ([`Dataset::load_into`]); chunk k + 1
/// is loaded on a background thread while `f` runs on chunk k. The first error — of a load or
/// of `f` — stops both and is returned (a load error is returned when `f` reaches that chunk,
/// so every chunk before it has been handed to `f`).
pub fn for_each_batch(
    data: &dyn Dataset,
    idx: &[usize],
    batch: usize,
    mut f: impl FnMut(&[f32], &[usize]) -> Result<()>,
) -> Result<()> {
    let chunks: Vec<&[usize]> = idx.chunks(batch.max(1)).collect();
    if chunks.len() <= 1 {
        let mut x = Vec::new();
        for c in chunks {
            data.load_into(c, &mut x)?;
            f(&x, c)?;
        }
        return Ok(());
    }
    let chunks = &chunks;
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = sync_channel::<Result<Vec<f32>>>(PREFETCH_DEPTH);
        let (free_tx, free_rx) = channel::<Vec<f32>>();
        s.spawn(move || {
            for c in chunks {
                let mut buf = free_rx.try_recv().unwrap_or_default();
                let r = data.load_into(c, &mut buf).map(|()| buf);
                let failed = r.is_err();
                // A send error: the caller stopped (its own error); nothing more to load.
                if ready_tx.send(r).is_err() || failed {
                    return;
                }
            }
        });
        for c in chunks {
            let x = ready_rx
                .recv()
                .map_err(|_| Error::invalid("data loader", "stopped before the last batch"))??;
            f(&x, c)?;
            // The loader may have finished: then the buffer is simply dropped.
            let _ = free_tx.send(x);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::InMemoryDataset;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A dataset that counts loads in flight and fails at one index.
    struct Probe {
        inner: InMemoryDataset,
        fail_at: Option<usize>,
        loaded: AtomicUsize,
    }

    impl Dataset for Probe {
        fn name(&self) -> &str {
            "probe"
        }
        fn len(&self) -> usize {
            self.inner.len()
        }
        fn sample_numel(&self) -> usize {
            self.inner.sample_numel()
        }
        fn labels(&self) -> &[i64] {
            self.inner.labels()
        }
        fn load(&self, indices: &[usize]) -> Result<Vec<f32>> {
            if let Some(i) = self.fail_at.filter(|i| indices.contains(i)) {
                return Err(Error::invalid("probe", format!("sample {i} is bad")));
            }
            self.loaded.fetch_add(indices.len(), Ordering::SeqCst);
            self.inner.load(indices)
        }
        fn fingerprint(&self) -> Result<String> {
            self.inner.fingerprint()
        }
    }

    fn probe(n: usize, fail_at: Option<usize>) -> Probe {
        let inputs: Vec<f32> = (0..2 * n).map(|v| v as f32).collect();
        Probe {
            inner: InMemoryDataset::new("p", inputs, 2, vec![0; n]).unwrap(),
            fail_at,
            loaded: AtomicUsize::new(0),
        }
    }

    #[test]
    fn batches_arrive_in_order_with_their_inputs() {
        let d = probe(23, None);
        let idx: Vec<usize> = (0..23).rev().collect();
        let mut seen = Vec::new();
        for_each_batch(&d, &idx, 5, |x, c| {
            assert_eq!(x.len(), 2 * c.len());
            for (k, &i) in c.iter().enumerate() {
                assert_eq!(x[2 * k], 2.0 * i as f32);
            }
            seen.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, idx);
    }

    #[test]
    fn the_loader_runs_at_most_the_prefetch_depth_ahead() {
        let d = probe(100, None);
        let idx: Vec<usize> = (0..100).collect();
        let mut done = 0;
        for_each_batch(&d, &idx, 10, |_, c| {
            done += c.len();
            // Give the loader time to run ahead as far as it may.
            std::thread::sleep(std::time::Duration::from_millis(5));
            let ahead = d.loaded.load(Ordering::SeqCst) - done;
            // Queued batches + the one being loaded.
            assert!(ahead <= 10 * (PREFETCH_DEPTH + 1), "{ahead} samples ahead");
            Ok(())
        })
        .unwrap();
        assert_eq!(done, 100);
    }

    #[test]
    fn errors_of_loads_and_of_the_caller_stop_the_loop() {
        let d = probe(30, Some(17));
        let idx: Vec<usize> = (0..30).collect();
        let mut calls = 0;
        let e = for_each_batch(&d, &idx, 4, |_, _| {
            calls += 1;
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("sample 17 is bad"), "{e}");
        assert_eq!(calls, 4, "chunks before the bad one are processed");
        let d = probe(30, None);
        let e = for_each_batch(&d, &idx, 4, |_, c| match c[0] {
            8 => Err(Error::invalid("forward", "boom")),
            _ => Ok(()),
        })
        .unwrap_err();
        assert!(e.to_string().contains("boom"));
    }
}
