//! Arithmetic without library calls, so that the loops around it vectorize on any x86-64:
//! without SSE4.1 (Rust's baseline), `round` and `exp` are a libm call per value, which cost
//! more than the work around them in the quantizer, the attention and the sampler.

/// `x` rounded to the nearest integer, ties to even (as llama.cpp rounds), for `|x| < 2^22`:
/// adding 1.5 * 2^23 leaves the integer in the low mantissa bits.
#[inline(always)]
pub fn nearest_int(x: f32) -> i32 {
    ((x + ROUNDING_MAGIC).to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// 1.5 * 2^23: a float this large has no fraction bits, so adding it rounds.
const ROUNDING_MAGIC: f32 = 12_582_912.0;

/// Folds `xs` with `op` in sixteen independent lanes, then the lanes together: a vector op per
/// sixteen values where one running value would wait on each.
#[inline(always)]
pub fn lanes_reduce(xs: &[f32], init: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; 16];
    let chunks = xs.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(init, |a, &b| op(a, b));
    for c in chunks {
        for l in 0..16 {
            lanes[l] = op(lanes[l], c[l]);
        }
    }
    lanes.into_iter().fold(tail, op)
}

/// `e^x` for `x <= 0` (relative error under 4e-6): `e^x = 2^n * 2^f` with `n` an integer and
/// `f` in [-0.5, 0.5], `2^f` from its Taylor polynomial.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0); // below this e^x is under f32's normal range; 0 is close enough
    let t = x * std::f32::consts::LOG2_E;
    let rounded = t + ROUNDING_MAGIC; // holds n = round(t) in its low mantissa bits
    let n = rounded - ROUNDING_MAGIC;
    let f = (t - n) * std::f32::consts::LN_2; // e^f = 2^(t - n), |f| <= ln2/2
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    // 2^n through the exponent bits (n >= -126 here), with integer arithmetic on `rounded`'s
    // bits: `n as i32` is a saturating conversion that keeps loops from vectorizing.
    let biased = rounded.to_bits().wrapping_sub(ROUNDING_MAGIC.to_bits()).wrapping_add(127);
    f32::from_bits(biased << 23) * p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even_on_both_signs() {
        for (x, want) in [
            (0.0, 0),
            (0.4, 0),
            (0.5, 0),
            (0.6, 1),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.6, -3),
            (127.0, 127),
            (-127.0, -127),
        ] {
            assert_eq!(nearest_int(x), want, "{x}");
        }
    }

    #[test]
    fn the_exponential_is_accurate_over_the_softmax_range() {
        for i in 0..=100_000 {
            let x = -(i as f32) * 1e-3 * 0.8;
            let (got, want) = (exp_nonpositive(x), (x as f64).exp());
            assert!(((got as f64) - want).abs() <= 4e-6 * want, "e^{x}: {got} vs {want}");
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) < 1e-37);
    }

    #[test]
    fn lanes_reduce_folds_every_value() {
        let xs: Vec<f32> = (0..37).map(|i| i as f32).collect();
        assert_eq!(lanes_reduce(&xs, 0.0, |a, b| a + b), 666.0);
        assert_eq!(lanes_reduce(&xs, f32::NEG_INFINITY, f32::max), 36.0);
        assert_eq!(lanes_reduce(&[], 1.0, |a, b| a * b), 1.0);
    }
}
