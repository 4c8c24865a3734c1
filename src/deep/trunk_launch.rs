//! Which of the CUDA trunk's kernels (`cuda_trunk/kernels.cu`) runs on an NHWC f16 map, and with which
//! arguments. Pure: built in every configuration, so CI runs exactly these launches on the kernels compiled as
//! C++ (`tests/cuda_kernels_host.rs`), and the GPU build (`cuda_trunk/kernels.rs`) only carries them out.
//!
//! Every kernel has the signature `(const half* x, const half* bias, half* out, int n, int h, int w, int c,
//! [int kp,] int act)`: `act = 1` applies the pending bias and ReLU of the map's producer as it reads. On maps
//! whose channels are a multiple of 8 ([`eight_channel_kernels`]) and whose data start 16-byte aligned, the
//! `_c8` variant moves 8 channels per thread.

use super::conv::eight_channel_kernels;

/// One of the trunk's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkKernel {
    /// 3×3 im2col, padding 1, rows of `kp` values → `(n·h·w) × kp`.
    Im2Col {
        /// Row width: 9·C rounded up to 8 ([`super::conv::padded_k`]).
        kp: usize,
    },
    /// 2×2 max-pooling, stride 2 → `(n·h/2·w/2) × c`.
    MaxPool,
    /// `max(x + b, 0)` → `(n·h·w) × c` (the cuDNN engine's pass between two convolutions).
    BiasRelu,
}

/// A kernel launch, as the GPU build carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLaunch {
    /// The kernel's `extern "C"` name in `kernels.cu`.
    pub kernel: &'static str,
    /// The integer arguments after `(x, bias, out)`: `n, h, w, c, [kp,] act`.
    pub ints: Vec<i32>,
    /// Output rows (pixels).
    pub rows: usize,
    /// Output columns (channels, or `kp` for im2col).
    pub cols: usize,
    /// Work items of the grid-stride loop: `rows · cols`, or an eighth of it for a `_c8` variant.
    pub threads: usize,
}

impl KernelLaunch {
    /// Whether the launch applies a pending bias + ReLU (then the bias operand holds `c` values).
    pub fn applies_bias(&self) -> bool {
        self.ints.last() == Some(&1)
    }
}

fn int(v: usize, what: &str) -> Result<i32, String> {
    i32::try_from(v).map_err(|_| format!("{what} = {v} does not fit the kernel's int"))
}

impl TrunkKernel {
    /// The launch on the NHWC map `n × h × w × c` whose data start `x_offset` elements into their allocation
    /// (allocations are 256-byte aligned, so a multiple of 8 keeps 16-byte alignment), applying the pending
    /// bias + ReLU when `act`.
    pub fn launch(
        self,
        (n, h, w, c): (usize, usize, usize, usize),
        act: bool,
        x_offset: usize,
    ) -> Result<KernelLaunch, String> {
        int(n * h * w * c, "input elements")?;
        let c8 = eight_channel_kernels(c) && x_offset.is_multiple_of(8);
        let mut ints = vec![int(n, "n")?, int(h, "h")?, int(w, "w")?, int(c, "c")?];
        let (kernel, rows, cols) = match self {
            TrunkKernel::Im2Col { kp } => {
                if kp < 9 * c {
                    return Err(format!("im2col rows of {kp} cannot hold 9 × {c} values"));
                }
                ints.push(int(kp, "kp")?);
                // the _c8 variant writes whole rows of 9·C values: no padding columns to zero
                let name = if c8 && kp == 9 * c {
                    "alnrisk_im2col3x3_nhwc_c8"
                } else {
                    "alnrisk_im2col3x3_nhwc"
                };
                (name, n * h * w, kp)
            }
            TrunkKernel::MaxPool if !h.is_multiple_of(2) || !w.is_multiple_of(2) => {
                return Err(format!("max-pooling needs even sizes, got {h}×{w}"));
            }
            TrunkKernel::MaxPool if c8 => ("alnrisk_maxpool2_nhwc_c8", n * (h / 2) * (w / 2), c),
            TrunkKernel::MaxPool => ("alnrisk_maxpool2_nhwc", n * (h / 2) * (w / 2), c),
            TrunkKernel::BiasRelu if c8 => ("alnrisk_bias_relu_nhwc_c8", n * h * w, c),
            TrunkKernel::BiasRelu => ("alnrisk_bias_relu_nhwc", n * h * w, c),
        };
        ints.push(i32::from(act));
        int(rows * cols, "output elements")?;
        let threads = if kernel.ends_with("_c8") {
            rows * cols / 8
        } else {
            rows * cols
        };
        Ok(KernelLaunch {
            kernel,
            ints,
            rows,
            cols,
            threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launches_pick_the_variant_and_the_arguments_of_the_kernels_signatures() {
        let l = TrunkKernel::Im2Col { kp: 576 }
            .launch((1, 112, 112, 64), true, 0)
            .unwrap();
        assert_eq!(l.kernel, "alnrisk_im2col3x3_nhwc_c8");
        assert_eq!(l.ints, [1, 112, 112, 64, 576, 1]);
        assert_eq!((l.rows, l.cols, l.threads), (112 * 112, 576, 112 * 112 * 72));
        assert!(l.applies_bias());
        // the input (3 channels, rows padded from 27 to 32) and a misaligned view take the one-channel kernels
        let l = TrunkKernel::Im2Col { kp: 32 }
            .launch((2, 224, 224, 3), false, 0)
            .unwrap();
        assert_eq!((l.kernel, l.threads), ("alnrisk_im2col3x3_nhwc", 2 * 224 * 224 * 32));
        assert_eq!(l.ints, [2, 224, 224, 3, 32, 0]);
        let l = TrunkKernel::MaxPool.launch((1, 14, 14, 512), true, 4).unwrap();
        assert_eq!((l.kernel, l.rows, l.cols), ("alnrisk_maxpool2_nhwc", 49, 512));
        let l = TrunkKernel::BiasRelu.launch((1, 14, 14, 512), true, 8).unwrap();
        assert_eq!(
            (l.kernel, l.ints.len(), l.threads),
            ("alnrisk_bias_relu_nhwc_c8", 5, 14 * 14 * 64)
        );
        assert!(TrunkKernel::MaxPool.launch((1, 7, 7, 512), false, 0).is_err());
        assert!(TrunkKernel::Im2Col { kp: 16 }.launch((1, 8, 8, 3), false, 0).is_err());
        assert!(
            TrunkKernel::BiasRelu
                .launch((1 << 16, 1 << 16, 1, 1), false, 0)
                .is_err()
        );
    }
}
