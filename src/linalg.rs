//! Small dense linear algebra shared by the feature code and the statistics: eigenvalues of symmetric
//! matrices and linear solves.

/// Up to this size, [`symmetric_eigenvalues`] uses the cyclic Jacobi method; above it, Householder
/// tridiagonalisation and implicit QR.
const JACOBI_MAX_N: usize = 8;

/// Eigenvalues of a symmetric `n×n` matrix (row-major), ascending. A matrix with a non-finite entry has only
/// NaN eigenvalues.
///
/// - Up to 8 rows (the shape's 3×3 covariance, GLCMs of a few gray levels): the cyclic Jacobi
///   method, which also resolves eigenvalues far below the largest one to a few ulps of themselves (a flat
///   ROI's least axis).
/// - Larger (GLCMs with tens to hundreds of gray levels, for the MCC): Householder reduction to a tridiagonal
///   matrix, then the implicit QR method with Wilkinson shifts, `4n³/3` multiplications instead of Jacobi's
///   `~6n³` per sweep over several sweeps, on rows read in order. Each eigenvalue is then exact to a few ulps
///   of the largest, which is what feature parity needs (the MCC is the square root of the second largest).
pub fn symmetric_eigenvalues(a: Vec<f64>, n: usize) -> Vec<f64> {
    debug_assert_eq!(a.len(), n * n);
    if a.iter().any(|v| !v.is_finite()) {
        return vec![f64::NAN; n];
    }
    let mut ev = if n <= JACOBI_MAX_N {
        jacobi_eigenvalues(a, n)
    } else {
        let (mut diag, mut off) = householder_tridiagonal(a, n);
        tridiagonal_qr(&mut diag, &mut off);
        diag
    };
    ev.sort_by(|x, y| x.total_cmp(y));
    ev
}

/// The diagonal of a symmetric matrix after cyclic Jacobi rotations have driven its off-diagonal mass below
/// 1e-26 of the diagonal's (eigenvalues settled to ~1e-13 relative), in no particular order.
fn jacobi_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for _sweep in 0..100 {
        let mut off = 0.0;
        let mut diag = 0.0;
        for p in 0..n {
            diag += a[p * n + p] * a[p * n + p];
            for q in p + 1..n {
                off += a[p * n + q] * a[p * n + q];
            }
        }
        if off <= 1e-26 * diag.max(f64::MIN_POSITIVE) || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let app = a[p * n + p];
                let aqq = a[q * n + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                a[p * n + q] = 0.0;
                a[q * n + p] = 0.0;
            }
        }
    }
    (0..n).map(|i| a[i * n + i]).collect()
}

/// Reduce a symmetric `n×n` matrix (row-major, `n ≥ 1`) to a similar tridiagonal one by Householder
/// reflections `H = I − 2vvᵀ`, one per column: returns its diagonal (`n`) and sub-diagonal (`n − 1`).
///
/// Step `k` reflects rows and columns `k+1..n` so that column `k` below the sub-diagonal vanishes:
/// `x = A[k+1.., k]`, `α = −sign(x₀)‖x‖`, `v ∝ x − αe₁`; then with `p = 2Av` and `w = p − (vᵀp)v`,
/// `HAH = A − vwᵀ − wvᵀ` on the trailing block (only its rows are touched, in order).
fn householder_tridiagonal(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut diag = vec![0.0; n];
    let mut off = vec![0.0; n.saturating_sub(1)];
    let mut v = vec![0.0; n];
    let mut w = vec![0.0; n];
    for k in 0..n.saturating_sub(1) {
        diag[k] = a[k * n + k];
        let lo = k + 1;
        // x = A[lo.., k], scaled by its largest magnitude so that the norm neither overflows nor underflows
        let scale = (lo..n).map(|i| a[i * n + k].abs()).fold(0.0, f64::max);
        if scale == 0.0 {
            off[k] = 0.0;
            continue;
        }
        let mut norm2 = 0.0;
        for i in lo..n {
            v[i] = a[i * n + k] / scale;
            norm2 += v[i] * v[i];
        }
        let norm = norm2.sqrt();
        let alpha = if v[lo] > 0.0 { -norm } else { norm };
        off[k] = alpha * scale;
        if lo == n - 1 {
            // a single element below the diagonal: nothing to reflect (H would only flip its sign)
            off[k] = a[lo * n + k];
            break;
        }
        // v = (x − αe₁) / ‖x − αe₁‖, with ‖x − αe₁‖² = 2(‖x‖² − αx₀)
        let v_norm = (2.0 * (norm2 - alpha * v[lo])).sqrt();
        v[lo] -= alpha;
        for vi in &mut v[lo..n] {
            *vi /= v_norm;
        }
        // p = 2 A v on the trailing block (stored in w), then K = vᵀp and w = p − K v
        let mut k_dot = 0.0;
        for i in lo..n {
            let row = &a[i * n + lo..i * n + n];
            let dot: f64 = row.iter().zip(&v[lo..n]).map(|(x, y)| x * y).sum();
            w[i] = 2.0 * dot;
            k_dot += v[i] * w[i];
        }
        for i in lo..n {
            w[i] -= k_dot * v[i];
        }
        // A ← A − v wᵀ − w vᵀ on the trailing block
        for i in lo..n {
            let (vi, wi) = (v[i], w[i]);
            let row = &mut a[i * n + lo..i * n + n];
            for ((x, &vj), &wj) in row.iter_mut().zip(&v[lo..n]).zip(&w[lo..n]) {
                *x -= vi * wj + wi * vj;
            }
        }
    }
    diag[n - 1] = a[(n - 1) * n + (n - 1)];
    (diag, off)
}

/// Overwrite `diag` with the eigenvalues (in no particular order) of the symmetric tridiagonal matrix with
/// diagonal `diag` and sub-diagonal `off` (`off.len() + 1 == diag.len()`); `off` is destroyed.
///
/// Implicit shifted QR on the trailing unreduced block `l..=m` (Golub & Van Loan, §8.3): the Wilkinson shift
/// `μ` is the eigenvalue of the block's last 2×2 closer to its last diagonal entry; a Givens rotation built
/// from `(d_l − μ, e_l)` starts a bulge that rotations `k = l..m` chase off the bottom. An off-diagonal entry
/// below `ε(|d_k| + |d_{k+1}|)` splits the matrix there. Each step converges cubically, so the 30 steps
/// allowed per eigenvalue are far more than a finite matrix needs.
fn tridiagonal_qr(diag: &mut [f64], off: &mut [f64]) {
    let n = diag.len();
    let negligible =
        |off: f64, a: f64, b: f64| off.abs() <= f64::EPSILON * (a.abs() + b.abs()) || off.abs() < f64::MIN_POSITIVE;
    let mut m = n.saturating_sub(1);
    let mut steps = 0;
    while m > 0 {
        if negligible(off[m - 1], diag[m - 1], diag[m]) {
            off[m - 1] = 0.0;
            m -= 1;
            steps = 0;
            continue;
        }
        steps += 1;
        if steps > 30 {
            // not converging (cannot happen for finite input): leave the rest as they are
            m -= 1;
            steps = 0;
            continue;
        }
        let mut l = m - 1;
        while l > 0 && !negligible(off[l - 1], diag[l - 1], diag[l]) {
            l -= 1;
        }
        // Wilkinson shift from the trailing 2×2 [[d_{m−1}, e], [e, d_m]]
        let e = off[m - 1];
        let delta = (diag[m - 1] - diag[m]) / 2.0;
        let sign = if delta < 0.0 { -1.0 } else { 1.0 };
        let mu = diag[m] - e * e / (delta + sign * hypot(delta, e));
        let mut x = diag[l] - mu;
        let mut z = off[l];
        for k in l..m {
            // the rotation R = [[c, s], [−s, c]] on rows and columns k, k+1 with R·(x, z)ᵀ = (r, 0)ᵀ
            let r = hypot(x, z);
            let (c, s) = if r == 0.0 { (1.0, 0.0) } else { (x / r, z / r) };
            if k > l {
                off[k - 1] = r;
            }
            let (a, b, d) = (diag[k], off[k], diag[k + 1]);
            let cs = c * s;
            diag[k] = c * c * a + 2.0 * cs * b + s * s * d;
            diag[k + 1] = s * s * a - 2.0 * cs * b + c * c * d;
            off[k] = cs * (d - a) + (c * c - s * s) * b;
            if k + 1 < m {
                // the bulge at (k, k+2), and what remains of e_{k+1}
                z = s * off[k + 1];
                off[k + 1] *= c;
                x = off[k];
            }
        }
    }
}

/// `√(a² + b²)` without overflow or underflow, scaled by the larger magnitude. Not `f64::hypot`: libm's
/// `hypot` carries the symbol version GLIBC_2.35 on aarch64, above what the Jetson package declares.
fn hypot(a: f64, b: f64) -> f64 {
    let (a, b) = (a.abs(), b.abs());
    let big = a.max(b);
    if big == 0.0 || !big.is_finite() {
        return big;
    }
    let (a, b) = (a / big, b / big);
    big * (a * a + b * b).sqrt()
}

/// Solve `A x = b` for a square `n×n` row-major `A` (Gaussian elimination with partial pivoting); `None` if
/// `A` is singular.
pub fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))?;
        if a[piv * n + c].abs() < 1e-300 {
            return None;
        }
        for k in 0..n {
            a.swap(c * n + k, piv * n + k);
        }
        b.swap(c, piv);
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * n + r];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_spectrum() {
        // [[2,1,0],[1,2,0],[0,0,5]] → 1, 3, 5
        let ev = symmetric_eigenvalues(vec![2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 5.0], 3);
        assert!((ev[0] - 1.0).abs() < 1e-14 && (ev[1] - 3.0).abs() < 1e-14 && (ev[2] - 5.0).abs() < 1e-14);
    }

    /// A deterministic generator of values in [-1, 1) (64-bit LCG, top bits).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// `Q diag(λ) Qᵀ` with `Q` a product of three random reflections `I − 2uuᵀ/uᵀu`, formed by plain
    /// products: a symmetric matrix whose eigenvalues are `λ` (to rounding), built without the code under test.
    fn with_spectrum(lambda: &[f64], rng: &mut Lcg) -> Vec<f64> {
        let n = lambda.len();
        let mut q: Vec<f64> = (0..n * n).map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 }).collect();
        for _ in 0..3 {
            let u: Vec<f64> = (0..n).map(|_| rng.next()).collect();
            let uu: f64 = u.iter().map(|x| x * x).sum();
            let h: Vec<f64> = (0..n * n)
                .map(|i| f64::from(u8::from(i % (n + 1) == 0)) - 2.0 * u[i / n] * u[i % n] / uu)
                .collect();
            q = (0..n * n)
                .map(|i| (0..n).map(|k| q[i / n * n + k] * h[k * n + i % n]).sum())
                .collect();
        }
        (0..n * n)
            .map(|i| (0..n).map(|k| q[i / n * n + k] * lambda[k] * q[i % n * n + k]).sum())
            .collect()
    }

    fn assert_spectrum(got: &[f64], lambda: &[f64], what: &str) {
        let mut want = lambda.to_vec();
        want.sort_by(|x, y| x.total_cmp(y));
        let tol = 1e-12 * want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= tol, "{what}: eigenvalue {i}: {g} vs {w}");
        }
    }

    #[test]
    fn known_spectra_on_both_methods() {
        let mut rng = Lcg(7);
        // sizes on both sides of the switch from Jacobi to Householder + QR
        for n in [1, 2, 3, 5, 8, 9, 10, 17, 33, 64, 150] {
            let spectra: Vec<(&str, Vec<f64>)> = vec![
                ("random", (0..n).map(|_| rng.next() * 10.0).collect()),
                ("repeated", (0..n).map(|i| [0.0, 1.0, 1.0, -2.0][i % 4]).collect()),
                ("graded", (0..n).map(|i| 10f64.powi(-(i as i32 % 9))).collect()),
                ("rank one", (0..n).map(|i| if i == 0 { 3.5 } else { 0.0 }).collect()),
            ];
            for (what, lambda) in spectra {
                let a = with_spectrum(&lambda, &mut rng);
                assert_spectrum(&symmetric_eigenvalues(a, n), &lambda, &format!("{what}, n = {n}"));
            }
        }
    }

    #[test]
    fn householder_and_qr_agree_with_jacobi_on_gram_matrices() {
        // positive semi-definite like the GLCM's MCC matrix: S = B Bᵀ with non-negative B
        let mut rng = Lcg(11);
        for n in [9, 12, 31, 70] {
            let b: Vec<f64> = (0..n * n).map(|_| rng.next().max(0.0)).collect();
            let s: Vec<f64> = (0..n * n)
                .map(|i| (0..n).map(|k| b[i / n * n + k] * b[i % n * n + k]).sum())
                .collect();
            let mut jacobi = jacobi_eigenvalues(s.clone(), n);
            jacobi.sort_by(|x, y| x.total_cmp(y));
            assert_spectrum(&symmetric_eigenvalues(s, n), &jacobi, &format!("gram, n = {n}"));
        }
    }

    #[test]
    fn already_reduced_and_split_matrices() {
        // diagonal (every reflection is skipped) and block-diagonal (the QR steps split at a zero off-diagonal)
        let n = 12;
        let diag: Vec<f64> = (0..n * n)
            .map(|i| if i % (n + 1) == 0 { (i / n) as f64 - 4.0 } else { 0.0 })
            .collect();
        let lambda: Vec<f64> = (0..n).map(|i| i as f64 - 4.0).collect();
        assert_spectrum(&symmetric_eigenvalues(diag, n), &lambda, "diagonal");
        let mut blocks = vec![0.0; n * n];
        for b in 0..n / 2 {
            // [[2, 1], [1, 2]] → 1 and 3, on each 2×2 diagonal block
            let k = 2 * b;
            blocks[k * n + k] = 2.0;
            blocks[(k + 1) * n + k + 1] = 2.0;
            blocks[k * n + k + 1] = 1.0;
            blocks[(k + 1) * n + k] = 1.0;
        }
        let lambda: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { 3.0 }).collect();
        assert_spectrum(&symmetric_eigenvalues(blocks, n), &lambda, "2×2 blocks");
        assert!(symmetric_eigenvalues(Vec::new(), 0).is_empty());
    }

    #[test]
    fn non_finite_entries_give_nan() {
        for n in [3, 12] {
            let mut a = vec![1.0; n * n];
            a[n + 2] = f64::NAN;
            assert!(symmetric_eigenvalues(a, n).iter().all(|v| v.is_nan()), "n = {n}");
        }
    }
}
