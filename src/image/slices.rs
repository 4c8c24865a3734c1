//! Slice-wise helpers on masks.

/// The slice along ITK `axis` with the most ROI voxels, lowest index on ties: `(index, voxel count)`.
///
/// This is the one definition of "the largest tumour cross-section": shape2D uses it, and so does the VGG crop.
/// `size` is `(x, y, z)` and `inside` is laid out x fastest.
pub fn largest_slice(size: [usize; 3], inside: &[bool], axis: usize) -> (usize, usize) {
    let mut counts = vec![0usize; size[axis]];
    for k in 0..size[2] {
        for j in 0..size[1] {
            for i in 0..size[0] {
                if inside[i + size[0] * (j + size[1] * k)] {
                    counts[[i, j, k][axis]] += 1;
                }
            }
        }
    }
    let mut best = (0, 0);
    for (s, &c) in counts.iter().enumerate() {
        if c > best.1 {
            best = (s, c);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_lowest_index() {
        // 2×1×3: slices k=0 and k=2 both hold 2 voxels
        let inside = [true, true, false, true, true, true];
        assert_eq!(largest_slice([2, 1, 3], &inside, 2), (0, 2));
        assert_eq!(largest_slice([2, 1, 3], &inside, 0), (1, 3));
    }
}
