//! Gray-level discretisation, exactly as PyRadiomics' `imageoperations.getBinEdges` / `binImage`.
//!
//! - **Fixed bin width** `w` (default 25): edges start at the largest multiple of `w` not above the ROI
//!   minimum, `lo = min − (min mod w)` (Python/numpy modulo, sign of the divisor), and run as
//!   `numpy.arange(lo, max + 2w, w)`; a flat ROI gets the two edges `[e₀ − ½, e₀ + ½]`.
//! - **Fixed bin count** `n`: `numpy.histogram(values, n)` edges, i.e. `linspace(min, max, n + 1)`
//!   (`min ± ½` when flat), with the top edge raised by 1 so the maximum falls in the last bin.
//!
//! A value `x` gets level `numpy.digitize(x, edges)` = the number of edges `≤ x`, so levels start at 1.
//! Reference: van Griethuysen et al., Cancer Research 2017 (PyRadiomics), and the IBSI reference manual
//! (Zwanenburg et al., Radiology 2020), section 2.7.

/// How intensities are grouped into gray levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Binning {
    /// Fixed bin width (PyRadiomics `binWidth`).
    Width(f64),
    /// Fixed number of bins (PyRadiomics `binCount`).
    Count(usize),
}

/// numpy's floating-point remainder: the result has the sign of the divisor.
pub fn py_mod(a: f64, b: f64) -> f64 {
    let mut r = a % b; // C fmod
    if r != 0.0 && ((b < 0.0) != (r < 0.0)) {
        r += b;
    }
    r
}

/// The bin edges PyRadiomics computes for `values` (the intensities inside the ROI).
pub fn bin_edges(values: &[f64], binning: Binning) -> Vec<f64> {
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        min = min.min(v);
        max = max.max(v);
    }
    match binning {
        Binning::Width(w) => {
            let lo = min - py_mod(min, w);
            let hi = max + 2.0 * w;
            // numpy.arange: length ceil((stop - start) / step), values start + i * ((start + step) - start)
            let len = ((hi - lo) / w).ceil().max(0.0) as usize;
            let delta = (lo + w) - lo;
            let mut edges: Vec<f64> = (0..len)
                .map(|i| if i == 0 { lo } else { lo + i as f64 * delta })
                .collect();
            if edges.len() == 1 {
                let e = edges[0];
                edges = vec![e - 0.5, e + 0.5];
            }
            edges
        }
        Binning::Count(n) => {
            let (first, last) = if min == max { (min - 0.5, max + 0.5) } else { (min, max) };
            let step = (last - first) / n as f64;
            let mut edges: Vec<f64> = (0..=n).map(|i| i as f64 * step + first).collect();
            edges[n] = last;
            edges[n] += 1.0;
            edges
        }
    }
}

/// `numpy.digitize(x, edges)` for increasing edges: the number of edges `≤ x`.
#[inline]
pub fn digitize(x: f64, edges: &[f64]) -> u32 {
    edges.partition_point(|&e| e <= x) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_modulo_follows_divisor_sign() {
        assert_eq!(py_mod(-7.0, 25.0), 18.0);
        assert_eq!(py_mod(7.0, 25.0), 7.0);
        assert_eq!(py_mod(50.0, 25.0), 0.0);
    }

    #[test]
    fn width_edges_match_numpy_arange() {
        // min 468, max 1266, width 25 → arange(450, 1316, 25): 35 edges
        let e = bin_edges(&[468.0, 1266.0, 700.0], Binning::Width(25.0));
        assert_eq!(e.len(), 35);
        assert_eq!(e[0], 450.0);
        assert_eq!(*e.last().unwrap(), 1300.0);
        assert_eq!(digitize(468.0, &e), 1);
        assert_eq!(digitize(475.0, &e), 2);
        assert_eq!(digitize(1266.0, &e), 33);
    }

    #[test]
    fn count_edges_include_maximum() {
        let e = bin_edges(&[0.0, 10.0], Binning::Count(5));
        assert_eq!(e, vec![0.0, 2.0, 4.0, 6.0, 8.0, 11.0]);
        assert_eq!(digitize(10.0, &e), 5);
        assert_eq!(digitize(0.0, &e), 1);
    }
}
