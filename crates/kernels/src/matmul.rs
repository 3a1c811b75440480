//! A bounds-checked wrapper over `gemm` for the strided f32 matrices inside fused kernels.

/// A read-only strided matrix view: element (r, c) is `data[r * rs + c * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl Mat<'_> {
    /// The transpose, as a view (no copy).
    pub(crate) fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// One past the largest offset the view reads (0 when empty).
    fn span(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `dst ← beta · lhs · rhs`, or `dst ← dst + beta · lhs · rhs` when `accumulate`. `dst` is
/// (lhs.rows × rhs.cols) with row stride `dst_rs` and unit column stride. Single-threaded: the
/// callers parallelise over independent blocks.
pub(crate) fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    beta: f32,
    accumulate: bool,
) {
    gemm_into(
        dst,
        dst_rs,
        lhs,
        rhs,
        beta,
        accumulate,
        gemm::Parallelism::None,
    );
}

/// `dst ← beta · lhs · rhs` as in [`matmul`], for one large product split across the rayon pool.
pub(crate) fn matmul_par(dst: &mut [f32], dst_rs: usize, lhs: Mat<'_>, rhs: Mat<'_>, beta: f32) {
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    gemm_into(dst, dst_rs, lhs, rhs, beta, false, par);
}

fn gemm_into(
    dst: &mut [f32],
    dst_rs: usize,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    beta: f32,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul: inner dimensions differ");
    assert!(
        lhs.span() <= lhs.data.len() && rhs.span() <= rhs.data.len(),
        "matmul: operand out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len() && dst_rs >= n,
        "matmul: destination out of bounds"
    );
    // SAFETY: the asserts above bound every offset gemm reads from `lhs`/`rhs` and writes in
    // `dst` (rows of `n` elements `dst_rs` apart, which cannot overlap as `dst_rs >= n`); `dst`
    // is exclusively borrowed and cannot alias the shared operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_product_and_accumulate() {
        // lhs 2×3 row-major, rhs = transpose of a 2×3 row-major matrix.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let lhs = Mat {
            data: &a,
            rows: 2,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        let rhs = Mat {
            data: &b,
            rows: 2,
            cols: 3,
            rs: 3,
            cs: 1,
        }
        .t();
        let mut dst = [10.0, 10.0, -1.0, 10.0, 10.0, -1.0];
        matmul(&mut dst, 3, lhs, rhs, 2.0, true);
        assert_eq!(dst, [18.0, 14.0, -1.0, 30.0, 20.0, -1.0]);
        matmul(&mut dst, 3, lhs, rhs, 1.0, false);
        assert_eq!(dst, [4.0, 2.0, -1.0, 10.0, 5.0, -1.0]);
    }
}
