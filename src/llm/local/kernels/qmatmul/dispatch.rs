//! Picks the SIMD kernel set and its `N`-row instance for a group of input rows, and stands in
//! for the kernels on other architectures (where nothing is available and nothing calls them).

use super::inputs::QuantInputs;
use super::tiles::{TileQ4K, TileQ6K, TileQ8_0};
use super::Kernels;

/// Input rows per kernel call.
pub const MT: usize = 4;

#[cfg(target_arch = "x86_64")]
pub fn available(kernels: Kernels) -> bool {
    static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    match kernels {
        Kernels::Scalar => true,
        Kernels::Avx512Vnni => *AVX512.get_or_init(super::avx512::available),
        Kernels::Avx2 => *AVX2.get_or_init(super::avx2::available),
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn available(kernels: Kernels) -> bool {
    kernels == Kernels::Scalar
}

macro_rules! dispatch {
    ($name:ident, $tile:ty) => {
        /// `rows.len()` (1..=MT) input rows against one row tile with a SIMD kernel set;
        /// `outs[i]` receives row i's sixteen outputs and must point at sixteen writable floats.
        pub fn $name(
            kernels: Kernels,
            tiles: &[$tile],
            x: &QuantInputs,
            rows: &[usize],
            outs: &[*mut f32],
        ) {
            assert!(
                kernels != Kernels::Scalar && available(kernels),
                "{kernels:?} kernels called on a CPU without them"
            );
            assert!(rows.len() == outs.len() && rows.iter().all(|&r| r < x.rows));
            assert!(!tiles.is_empty() && tiles.len() * x.block == x.k);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the features were detected, the tile count matches the inputs' length,
            // the rows exist, and the caller owns the output columns.
            unsafe {
                macro_rules! call {
                    ($k:path) => {{
                        use $k as k;
                        match rows.len() {
                            1 => k::<1>(tiles, x, [rows[0]], [outs[0]]),
                            2 => k::<2>(tiles, x, [rows[0], rows[1]], [outs[0], outs[1]]),
                            3 => k::<3>(
                                tiles,
                                x,
                                [rows[0], rows[1], rows[2]],
                                [outs[0], outs[1], outs[2]],
                            ),
                            4 => k::<4>(
                                tiles,
                                x,
                                [rows[0], rows[1], rows[2], rows[3]],
                                [outs[0], outs[1], outs[2], outs[3]],
                            ),
                            n => unreachable!("{n} rows in one kernel call"),
                        }
                    }};
                }
                match kernels {
                    Kernels::Avx512Vnni => call!(super::avx512::$name),
                    Kernels::Avx2 => call!(super::avx2::$name),
                    Kernels::Scalar => unreachable!("checked above"),
                }
            }
        }
    };
}

dispatch!(q4k, TileQ4K);
dispatch!(q6k, TileQ6K);
dispatch!(q8_0, TileQ8_0);
