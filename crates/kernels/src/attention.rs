//! Causal scaled-dot-product attention with grouped-query heads and a stable softmax.

use crate::cpu;
use crate::matmul::{Mat, matmul};
use candle_core::{CpuStorage, CustomOp3, D, Device, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Causal attention. `q` (b, tq, h, dh); `k`, `v` (b, tk, hkv, dh) with `hkv` dividing `h`
/// (query head `j` reads kv head `j / (h / hkv)`); `tq <= tk`. Query `i` sits at absolute position
/// `tk - tq + i` and sees keys `0..=tk - tq + i`. Returns (b, tq, h, dh).
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    check(q, k, v)?;
    if cpu::fused_ok(&[q, k, v]) {
        q.contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, Attention { scale })
    } else {
        composite(q, k, v, scale)
    }
}

/// The fused op, flash-style: it keeps no attention matrix. Backward recomputes the scores and
/// the softmax block by block from q and k. That costs one extra (tq × tk × dh) product, about
/// a fifth more attention work, but saving the probabilities would hold b·h·tq·tk floats per
/// layer until backward (1.2 GB for the `base` preset at seq 512), which does not scale.
struct Attention {
    scale: f32,
}

/// Query rows per block: a block only multiplies against the keys it can see, which skips most
/// of the masked upper triangle, and its scores (QB × tk) stay in cache.
const QB: usize = 32;

/// Sizes of one call; slices hold one batch item in the (t, heads, dh) layout.
#[derive(Clone, Copy)]
struct Dims {
    tq: usize,
    tk: usize,
    h: usize,
    hkv: usize,
    dh: usize,
    scale: f32,
}

/// One query block of one head: rows `i0..i0 + rows`, seeing keys `0..kend`.
#[derive(Clone, Copy)]
struct Block {
    j: usize,
    g: usize,
    i0: usize,
    rows: usize,
    kend: usize,
}

impl Dims {
    fn blocks(self) -> impl Iterator<Item = Block> {
        let rep = self.h / self.hkv;
        (0..self.h).flat_map(move |j| {
            (0..self.tq).step_by(QB).map(move |i0| {
                let rows = QB.min(self.tq - i0);
                Block {
                    j,
                    g: j / rep,
                    i0,
                    rows,
                    kend: self.tk - self.tq + i0 + rows,
                }
            })
        })
    }

    /// The block's rows of a (tq, h, dh) tensor.
    fn q_rows<'a>(self, x: &'a [f32], b: Block) -> Mat<'a> {
        let start = (b.i0 * self.h + b.j) * self.dh;
        Mat {
            data: &x[start..],
            rows: b.rows,
            cols: self.dh,
            rs: self.h * self.dh,
            cs: 1,
        }
    }

    /// The visible keys of kv head `g` of a (tk, hkv, dh) tensor.
    fn kv_rows<'a>(self, x: &'a [f32], b: Block) -> Mat<'a> {
        Mat {
            data: &x[b.g * self.dh..],
            rows: b.kend,
            cols: self.dh,
            rs: self.hkv * self.dh,
            cs: 1,
        }
    }

    /// Fills `p` (rows × kend) with the block's softmax probabilities, zero where masked.
    fn probs(self, q: &[f32], k: &[f32], b: Block, p: &mut [f32]) {
        let p = &mut p[..b.rows * b.kend];
        matmul(
            p,
            b.kend,
            self.q_rows(q, b),
            self.kv_rows(k, b).t(),
            self.scale,
            false,
        );
        for (r, row) in p.chunks_exact_mut(b.kend).enumerate() {
            let (live, dead) = row.split_at_mut(b.kend - b.rows + r + 1);
            let max = cpu::max(live);
            let inv = cpu::exp_in_place(live, max).recip();
            live.iter_mut().for_each(|x| *x *= inv);
            dead.fill(0.0);
        }
    }

    fn forward(self, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], p: &mut [f32]) {
        for b in self.blocks() {
            self.probs(q, k, b, p);
            let pm = Mat {
                data: p,
                rows: b.rows,
                cols: b.kend,
                rs: b.kend,
                cs: 1,
            };
            let start = (b.i0 * self.h + b.j) * self.dh;
            matmul(
                &mut o[start..],
                self.h * self.dh,
                pm,
                self.kv_rows(v, b),
                1.0,
                false,
            );
        }
    }

    /// `dS = P ∘ (dO·Vᵀ − rowsum(dO ∘ O))·scale`; `dQ = dS·K`, `dK += dSᵀ·Q`, `dV += Pᵀ·dO`.
    fn backward(self, x: [&[f32]; 5], grads: [&mut [f32]; 3], p: &mut [f32], ds: &mut [f32]) {
        let [q, k, v, o, d_o] = x;
        let [dq, dk, dv] = grads;
        let (hd, kd) = (self.h * self.dh, self.hkv * self.dh);
        for b in self.blocks() {
            self.probs(q, k, b, p);
            let ds = &mut ds[..b.rows * b.kend];
            matmul(
                ds,
                b.kend,
                self.q_rows(d_o, b),
                self.kv_rows(v, b).t(),
                1.0,
                false,
            );
            let (dom, om) = (self.q_rows(d_o, b), self.q_rows(o, b));
            for r in 0..b.rows {
                let row = r * om.rs;
                let delta = cpu::dot(&dom.data[row..row + self.dh], &om.data[row..row + self.dh]);
                let (dsr, pr) = (&mut ds[r * b.kend..][..b.kend], &p[r * b.kend..][..b.kend]);
                for c in 0..b.kend {
                    dsr[c] = pr[c] * (dsr[c] - delta) * self.scale;
                }
            }
            let dsm = Mat {
                data: ds,
                rows: b.rows,
                cols: b.kend,
                rs: b.kend,
                cs: 1,
            };
            let pm = Mat {
                data: p,
                rows: b.rows,
                cols: b.kend,
                rs: b.kend,
                cs: 1,
            };
            let (qm, km) = (self.q_rows(q, b), self.kv_rows(k, b));
            matmul(
                &mut dq[(b.i0 * self.h + b.j) * self.dh..],
                hd,
                dsm,
                km,
                1.0,
                false,
            );
            matmul(&mut dk[b.g * self.dh..], kd, dsm.t(), qm, 1.0, true);
            matmul(&mut dv[b.g * self.dh..], kd, pm.t(), dom, 1.0, true);
        }
    }
}

fn dims(q: &Shape, k: &Shape, scale: f32) -> Result<(usize, Dims)> {
    let (b, tq, h, dh) = q.dims4()?;
    let (_, tk, hkv, _) = k.dims4()?;
    Ok((
        b,
        Dims {
            tq,
            tk,
            h,
            hkv,
            dh,
            scale,
        },
    ))
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "fused-causal-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            cpu::slice(qs, ql)?,
            cpu::slice(ks, kl)?,
            cpu::slice(vs, vl)?,
        );
        let (_, d) = dims(ql.shape(), kl.shape(), self.scale)?;
        let (qn, kn) = (d.tq * d.h * d.dh, d.tk * d.hkv * d.dh);
        let mut o = vec![0.0f32; q.len()];
        // One batch item per task: its slices of q, k, v and o are contiguous and disjoint.
        o.par_chunks_mut(qn.max(1))
            .zip(
                q.par_chunks(qn.max(1))
                    .zip(k.par_chunks(kn.max(1)).zip(v.par_chunks(kn.max(1)))),
            )
            .for_each_init(
                || vec![0.0f32; QB * d.tk],
                |p, (o, (q, (k, v)))| d.forward(q, k, v, o, p),
            );
        Ok((CpuStorage::F32(o), ql.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        d_o: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d_o = d_o.contiguous()?;
        let (_, d) = dims(q.shape(), k.shape(), self.scale)?;
        let views = [
            cpu::view(q)?,
            cpu::view(k)?,
            cpu::view(v)?,
            cpu::view(o)?,
            cpu::view(&d_o)?,
        ];
        let [qs, ks, vs, os, dos] = [0, 1, 2, 3, 4].map(|i| views[i].get());
        let (qn, kn) = ((d.tq * d.h * d.dh).max(1), (d.tk * d.hkv * d.dh).max(1));
        let (mut dq, mut dk, mut dv) = (
            vec![0.0f32; qs.len()],
            vec![0.0f32; ks.len()],
            vec![0.0f32; ks.len()],
        );
        let inputs = qs
            .par_chunks(qn)
            .zip(ks.par_chunks(kn))
            .zip(vs.par_chunks(kn))
            .zip(os.par_chunks(qn).zip(dos.par_chunks(qn)));
        let outputs = dq
            .par_chunks_mut(qn)
            .zip(dk.par_chunks_mut(kn))
            .zip(dv.par_chunks_mut(kn));
        outputs.zip(inputs).for_each_init(
            || (vec![0.0f32; QB * d.tk], vec![0.0f32; QB * d.tk]),
            |(p, ds), (((dq, dk), dv), (((q, k), v), (o, d_o)))| {
                d.backward([q, k, v, o, d_o], [dq, dk, dv], p, ds)
            },
        );
        let (dq, dk, dv) = (
            cpu::tensor(dq, q.shape())?,
            cpu::tensor(dk, k.shape())?,
            cpu::tensor(dv, v.shape())?,
        );
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

fn check(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<()> {
    let (b, tq, h, dh) = q.dims4()?;
    let (bk, tk, hkv, dhk) = k.dims4()?;
    if v.dims() != k.dims() {
        bail!(
            "causal_attention: v {:?} must have k's shape {:?}",
            v.dims(),
            k.dims()
        );
    }
    if bk != b || dhk != dh {
        bail!(
            "causal_attention: k {:?} must match q {:?} in batch and head_dim",
            k.dims(),
            q.dims()
        );
    }
    if hkv == 0 || !h.is_multiple_of(hkv) {
        bail!("causal_attention: kv heads {hkv} must divide query heads {h}");
    }
    if tq > tk {
        bail!("causal_attention: {tq} queries but only {tk} keys; need tq <= tk");
    }
    Ok(())
}

/// Additive causal mask (tq, tk): 0 where key `j <= tk - tq + i`, −∞ elsewhere.
fn causal_mask(tq: usize, tk: usize, device: &Device) -> Result<Tensor> {
    let offset = tk - tq;
    let mask: Vec<f32> = (0..tq)
        .flat_map(|i| {
            (0..tk).map(move |j| {
                if j <= offset + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (tq, tk), device)
}

/// (b, t, hkv, dh) → (b, hkv·rep, t, dh), each kv head repeated `rep` times consecutively.
fn repeat_kv(x: &Tensor, rep: usize) -> Result<Tensor> {
    let (b, t, hkv, dh) = x.dims4()?;
    let x = x.transpose(1, 2)?;
    if rep == 1 {
        return x.contiguous();
    }
    x.unsqueeze(2)?
        .broadcast_as((b, hkv, rep, t, dh))?
        .contiguous()?
        .reshape((b, hkv * rep, t, dh))
}

/// Composite causal attention from candle ops (the reference and the GPU path).
pub fn composite(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    check(q, k, v)?;
    let (_, tq, h, _) = q.dims4()?;
    let (_, tk, hkv, _) = k.dims4()?;
    let dtype = q.dtype();
    let cdt = crate::compute_dtype(dtype);
    let q = q.to_dtype(cdt)?.transpose(1, 2)?.contiguous()?;
    let k = repeat_kv(&k.to_dtype(cdt)?, h / hkv)?;
    let v = repeat_kv(&v.to_dtype(cdt)?, h / hkv)?;
    let scores = (q.matmul(&k.t()?)? * f64::from(scale))?;
    let scores = scores.broadcast_add(&causal_mask(tq, tk, q.device())?.to_dtype(cdt)?)?;
    let max = scores.max_keepdim(D::Minus1)?.detach();
    let e = scores.broadcast_sub(&max)?.exp()?;
    let probs = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
    probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_same, grad_check, max_abs_diff, rand_tensor};
    use candle_core::DType;

    #[test]
    fn gqa_equals_explicitly_repeated_heads() {
        let q = rand_tensor((2, 5, 4, 8), 1, DType::F32);
        let k = rand_tensor((2, 5, 2, 8), 2, DType::F32);
        let v = rand_tensor((2, 5, 2, 8), 3, DType::F32);
        let rep = |t: &Tensor| repeat_kv(t, 2).unwrap().transpose(1, 2).unwrap();
        let a = causal_attention(&q, &k, &v, 0.3).unwrap();
        let b = causal_attention(&q, &rep(&k), &rep(&v), 0.3).unwrap();
        assert!(max_abs_diff(&a, &b) < 1e-6);
    }

    #[test]
    fn fewer_queries_see_the_prefix_like_the_last_rows() {
        let q = rand_tensor((1, 6, 2, 4), 1, DType::F32);
        let k = rand_tensor((1, 6, 1, 4), 2, DType::F32);
        let v = rand_tensor((1, 6, 1, 4), 3, DType::F32);
        let full = causal_attention(&q, &k, &v, 0.5).unwrap();
        let tail = causal_attention(&q.narrow(1, 4, 2).unwrap(), &k, &v, 0.5).unwrap();
        assert!(max_abs_diff(&full.narrow(1, 4, 2).unwrap(), &tail) < 1e-6);
    }

    #[test]
    fn first_query_copies_first_value() {
        let q = rand_tensor((1, 3, 2, 4), 1, DType::F32);
        let k = rand_tensor((1, 3, 2, 4), 2, DType::F32);
        let v = rand_tensor((1, 3, 2, 4), 3, DType::F32);
        let out = causal_attention(&q, &k, &v, 1.0).unwrap();
        assert!(max_abs_diff(&out.narrow(1, 0, 1).unwrap(), &v.narrow(1, 0, 1).unwrap()) < 1e-6);
    }

    #[test]
    fn composite_gradients_match_finite_differences() {
        let q = rand_tensor((2, 3, 4, 4), 1, DType::F64);
        let k = rand_tensor((2, 4, 2, 4), 2, DType::F64);
        let v = rand_tensor((2, 4, 2, 4), 3, DType::F64);
        grad_check(
            |t| composite(&t[0], &t[1], &t[2], 0.7),
            &[q, k, v],
            1e-5,
            1e-6,
        );
    }

    #[test]
    fn fused_gradients_match_finite_differences() {
        let q = rand_tensor((2, 3, 4, 4), 1, DType::F32);
        let k = rand_tensor((2, 4, 2, 4), 2, DType::F32);
        let v = rand_tensor((2, 4, 2, 4), 3, DType::F32);
        grad_check(
            |t| causal_attention(&t[0], &t[1], &t[2], 0.7),
            &[q, k, v],
            1e-2,
            1e-2,
        );
    }

    #[test]
    fn fused_equals_composite_forward_and_backward() {
        // tq spans two query blocks and sits after 5 cached keys; 6 query heads share 2 kv heads.
        let q = rand_tensor((2, 40, 6, 8), 1, DType::F32);
        let k = rand_tensor((2, 45, 2, 8), 2, DType::F32);
        let v = rand_tensor((2, 45, 2, 8), 3, DType::F32);
        let (f, c) = (
            |t: &[Tensor]| causal_attention(&t[0], &t[1], &t[2], 0.35),
            |t: &[Tensor]| composite(&t[0], &t[1], &t[2], 0.35),
        );
        assert_same(f, c, &[q, k, v], 1e-5);
    }

    #[test]
    fn bad_shapes_are_refused() {
        let q = rand_tensor((1, 4, 3, 4), 1, DType::F32);
        let k = rand_tensor((1, 4, 2, 4), 2, DType::F32);
        assert!(causal_attention(&q, &k, &k, 1.0).is_err());
        let q = rand_tensor((1, 5, 2, 4), 1, DType::F32);
        assert!(causal_attention(&q, &k, &k, 1.0).is_err());
    }
}
