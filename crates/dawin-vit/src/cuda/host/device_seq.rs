//! The sequences of device operations that `dawin`'s device pipeline runs, on [`HostVit`] (the
//! launch plans by the host interpreter, merges and row statistics by the kernels' CPU
//! references), against the CPU f32 reference: K merged arenas from one multi-lerp then their
//! forwards, a lerp into a reused arena, task arithmetic into an arena, the blended forward
//! over uploaded arenas, and one workspace reused by batches of different sizes.
use super::*;

fn merged_f32(ws: &[ClipWeights], w: &[f32]) -> ClipWeights {
    let mut mw = ws[0].clone();
    let base = ws[0].params();
    let others: Vec<Vec<&[f32]>> = ws[1..].iter().map(|o| o.params()).collect();
    for (k, o) in mw.params_mut().into_iter().enumerate() {
        let ms: Vec<&[f32]> = others.iter().map(|p| p[k]).collect();
        dawin_core::merge::task_arithmetic(base[k], &ms, w, o).unwrap();
    }
    mw
}

#[test]
fn k_merged_arenas_from_one_multi_lerp_match_the_cpu_merges() {
    let c = cfg();
    let (w0, w1) = (weights(40), weights(41));
    let x = images(3);
    let lambdas = [0.0f32, 0.25, 0.6, 1.0];
    for p in [Precision::F16, Precision::Bf16] {
        let dev = HostVit::new(&c, &[&w0, &w1], p).unwrap();
        let (a0, a1) = (dev.model(0).unwrap(), dev.model(1).unwrap());
        let mut outs: Vec<HostArena> = (0..lambdas.len())
            .map(|_| dev.new_arena().unwrap())
            .collect();
        let mut refs: Vec<&mut HostArena> = outs.iter_mut().collect();
        dev.multi_lerp(a0, a1, &lambdas, &mut refs).unwrap();
        // λ = 0 and λ = 1 are θ0 and θ1 bit for bit (the merge kernels' contract).
        assert_eq!(outs[0].bytes(), a0.bytes(), "{p:?}: λ = 0 is not θ0");
        assert_eq!(outs[3].bytes(), a1.bytes(), "{p:?}: λ = 1 is not θ1");
        for (k, &l) in lambdas.iter().enumerate() {
            let got = dev.forward(&[&outs[k]], &x, 3, None, false).unwrap().logits;
            let mw = merged_f32(&[w0.clone(), w1.clone()], &[l]);
            let (want, _) = cpu::forward(&x, 3, &c, &mw).unwrap();
            let e = rel_err(&got, &want);
            assert!(e < tol(p), "{p:?} λ = {l}: {e:.2e}");
            // Each output equals a separate lerp into a reused arena.
            let mut one = dev.new_arena().unwrap();
            dev.lerp(a0, a1, l, &mut one).unwrap();
            assert_eq!(one.bytes(), outs[k].bytes(), "{p:?} λ = {l}");
        }
    }
}

#[test]
fn task_arithmetic_arena_and_blend_match_the_cpu() {
    let c = cfg();
    let ws: Vec<ClipWeights> = (0..4).map(|s| weights(50 + s)).collect();
    let refs: Vec<&ClipWeights> = ws.iter().collect();
    let x = images(2);
    let w = [0.3f32, 0.2, 0.45];
    for p in [Precision::F16, Precision::Bf16] {
        let dev = HostVit::new(&c, &refs, p).unwrap();
        let mut out = dev.new_arena().unwrap();
        let models: Vec<&HostArena> = (1..4).map(|j| dev.model(j).unwrap()).collect();
        dev.task_arithmetic(dev.model(0).unwrap(), &models, &w, &mut out)
            .unwrap();
        let f = dev.forward(&[&out], &x, 2, None, true).unwrap();
        let (want_l, want_f) = cpu::forward(&x, 2, &c, &merged_f32(&ws, &w)).unwrap();
        assert!(rel_err(&f.logits, &want_l) < tol(p), "{p:?} logits");
        assert!(
            rel_err(f.features.as_ref().unwrap(), &want_f) < tol(p),
            "{p:?} features"
        );
        // The blended forward over the uploaded arenas: sample 0 through the same merge.
        let all: Vec<&HostArena> = (0..4).map(|j| dev.model(j).unwrap()).collect();
        let co = [0.3f32, 0.2, 0.45, 0.0, 0.0, 1.0];
        let b = dev.forward(&all, &x, 2, Some(&co), false).unwrap().logits;
        assert!(
            rel_err(&b[..5], &f.logits[..5]) < tol(p),
            "{p:?} blend row 0"
        );
        let (want3, _) = cpu::forward(&x[c.image_numel()..], 1, &c, &ws[3]).unwrap();
        assert!(rel_err(&b[5..], &want3) < tol(p), "{p:?} blend row 1");
    }
}

/// One workspace for every forward: batches 3, 5 (grows), 2 and 5 again (reused, stale values of
/// the earlier batches left in the buffers) give bit for bit what fresh buffers give.
#[test]
fn workspace_is_reused_across_batch_sizes() {
    let c = cfg();
    let (w0, w1) = (weights(60), weights(61));
    let dev = HostVit::new(&c, &[&w0, &w1], Precision::F16).unwrap();
    let a0 = dev.model(0).unwrap();
    let mut allocs = Vec::new();
    for batch in [3usize, 5, 2, 5] {
        let x: Vec<f32> = images(batch)
            .iter()
            .map(|v| v * (batch as f32 / 4.0))
            .collect();
        let got = dev.forward(&[a0], &x, batch, None, true).unwrap();
        let (fresh_l, fresh_f) = host_forward(&c, &[&w0], Precision::F16, &x, batch, None);
        assert_eq!(got.logits, fresh_l, "batch {batch}");
        assert_eq!(got.features.unwrap(), fresh_f, "batch {batch}");
        allocs.push(dev.workspace_allocations());
    }
    // The 15 buffers (images included, blend coefficients empty) at the first forward, the 14
    // batch-sized ones again at batch 5, none after.
    assert_eq!(allocs, vec![15, 29, 29, 29]);
    // A blended forward after plain ones adds the coefficient buffer only.
    let x = images(2);
    let both = [a0, dev.model(1).unwrap()];
    let got = dev.forward(&both, &x, 2, Some(&[0.3, 0.9]), false).unwrap();
    let (want, _) = host_forward(&c, &[&w0, &w1], Precision::F16, &x, 2, Some(&[0.3, 0.9]));
    assert_eq!(got.logits, want);
    assert_eq!(dev.workspace_allocations(), 30);
}

#[test]
fn device_rejects_foreign_arenas_and_bad_blends() {
    let c = cfg();
    let w = weights(70);
    let f16dev = HostVit::new(&c, &[&w], Precision::F16).unwrap();
    let bfdev = HostVit::new(&c, &[&w], Precision::Bf16).unwrap();
    let x = images(1);
    let e = f16dev
        .forward(&[bfdev.model(0).unwrap()], &x, 1, None, false)
        .unwrap_err();
    assert!(
        e.to_string().contains("dtype") || e.to_string().contains("layout"),
        "{e}"
    );
    let a = f16dev.model(0).unwrap();
    assert!(f16dev.forward(&[a, a], &x, 1, None, false).is_err());
    let nine: Vec<&HostArena> = vec![a; 9];
    assert!(f16dev
        .forward(&nine, &x, 1, Some(&[0.0; 8]), false)
        .is_err());
}
