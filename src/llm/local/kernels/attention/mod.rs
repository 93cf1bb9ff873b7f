//! Decode-step attention on the CPU, straight over the sequences' kv buffers.
//!
//! One new query row per sequence attends over its whole cache. Going through candle's tensor
//! ops here cost about 20 small ops per layer and sequence; this reads each key and value row
//! once for all the query heads that share it, and widens the f16 cache to f32 in the L1 cache
//! just before use.
//!
//! The positions are cut into chunks of `CHUNK` (`chunk.rs`: scores, a softmax local to the
//! chunk, the chunk's share of each output), run in parallel and merged per head in position
//! order, as flash-decoding does. Sequences whose chunk holds the same rows of the same buffer
//! (a prompt head restored from the prefix cache) share one pass over it: the rows are read
//! and widened once for all their query heads.
//!
//! Chunk boundaries are absolute positions, and a head's arithmetic depends only on its own
//! query and rows. So a sequence's attention has the same bits alone or in any batch, and
//! whether its positions lie in one buffer or in several: seeds that decode together give what
//! each gives alone.

mod chunk;
mod simd;

use crate::llm::local::kernels::fastmath::exp_nonpositive;
use chunk::{ChunkFn, Partial, Segment};
use half::f16;
use rayon::prelude::*;

/// One sequence's cache for one layer: its positions in order, as runs in separate buffers (a
/// prompt head shared with other sequences, then the sequence's own positions).
pub struct KvView<'a> {
    pub runs: Vec<KvRun<'a>>,
}

/// Consecutive positions in one buffer `[kv_heads, capacity, head_dim]` row-major f16, of which
/// rows `0..len` are filled.
pub struct KvRun<'a> {
    pub keys: &'a [f16],
    pub values: &'a [f16],
    pub capacity: usize,
    pub len: usize,
}

impl<'a> KvView<'a> {
    /// Positions in all runs.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// Whether the view holds no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Positions `from..to` of kv head `kv_head`, as one segment per run they touch.
    fn segments(&self, kv_head: usize, hd: usize, from: usize, to: usize) -> Vec<Segment<'a>> {
        let mut out = Vec::new();
        let mut first = 0;
        for r in &self.runs {
            let (a, b) = (from.max(first), to.min(first + r.len));
            if a < b {
                let base = kv_head * r.capacity * hd;
                let rows = base + (a - first) * hd..base + (b - first) * hd;
                out.push(Segment { keys: &r.keys[rows.clone()], values: &r.values[rows] });
            }
            first += r.len;
        }
        out
    }
}

/// The shapes every sequence shares.
#[derive(Clone, Copy)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// Positions per chunk: enough to keep the merge and the task hand-offs small, few enough that
/// a 1,200-position prompt gives every thread of a many-core machine its share.
const CHUNK: usize = 128;

/// Attention of each sequence's query row (`q`: `[views.len(), heads * head_dim]`) over its
/// view; returns the outputs in the same shape.
pub fn attend_batch(h: Heads, views: &[KvView<'_>], q: &[f32]) -> Vec<f32> {
    attend_batch_with(chunk::best(), h, views, q)
}

/// One chunk of one kv head, for the sequences that read the same rows there.
struct Task<'a> {
    kv_head: usize,
    segments: Vec<Segment<'a>>,
    /// Batch indices of the sequences, in order.
    readers: Vec<usize>,
}

fn attend_batch_with(kernel: ChunkFn, h: Heads, views: &[KvView<'_>], q: &[f32]) -> Vec<f32> {
    let (hd, group) = (h.head_dim, h.heads / h.kv_heads);
    let width = h.heads * hd;
    let tasks = plan(h, views);
    let partials: Vec<Partial> = tasks
        .par_iter()
        .map(|t| {
            let mut qs = Vec::with_capacity(t.readers.len() * group * hd);
            for &s in &t.readers {
                qs.extend_from_slice(&q[s * width + t.kv_head * group * hd..][..group * hd]);
            }
            kernel(hd, &qs, &t.segments)
        })
        .collect();
    // Merge each head's chunks in position order (the plan lists them so), rescaling the
    // running sums to the larger maximum.
    let n = views.len() * h.heads;
    let (mut max, mut sum, mut out) =
        (vec![f32::NEG_INFINITY; n], vec![0f32; n], vec![0f32; n * hd]);
    for (t, p) in tasks.iter().zip(&partials) {
        for (i, &s) in t.readers.iter().enumerate() {
            for g in 0..group {
                let (head, col) = (s * h.heads + t.kv_head * group + g, i * group + g);
                let (acc, part) =
                    (&mut out[head * hd..(head + 1) * hd], &p.out[col * hd..(col + 1) * hd]);
                if max[head] == f32::NEG_INFINITY {
                    (max[head], sum[head]) = (p.max[col], p.sum[col]);
                    acc.copy_from_slice(part);
                    continue;
                }
                let m = max[head].max(p.max[col]);
                let (a, b) = (exp_nonpositive(max[head] - m), exp_nonpositive(p.max[col] - m));
                (max[head], sum[head]) = (m, sum[head] * a + p.sum[col] * b);
                for (o, x) in acc.iter_mut().zip(part) {
                    *o = *o * a + x * b;
                }
            }
        }
    }
    for (row, s) in out.chunks_exact_mut(hd).zip(&sum) {
        let inv = 1.0 / s;
        row.iter_mut().for_each(|x| *x *= inv);
    }
    out
}

/// The tasks, by kv head and then chunk, so that each head's chunks come in position order.
/// Sequences whose chunk is the same rows of the same buffers share a task.
fn plan<'a>(h: Heads, views: &[KvView<'a>]) -> Vec<Task<'a>> {
    let longest = views.iter().map(KvView::len).max().unwrap_or(0);
    let mut tasks: Vec<Task<'a>> = Vec::new();
    for kv_head in 0..h.kv_heads {
        for from in (0..longest).step_by(CHUNK) {
            let first_of_chunk = tasks.len();
            for (s, v) in views.iter().enumerate() {
                let to = (from + CHUNK).min(v.len());
                if from >= to {
                    continue;
                }
                let segments = v.segments(kv_head, h.head_dim, from, to);
                match tasks[first_of_chunk..].iter_mut().find(|t| same_rows(&t.segments, &segments))
                {
                    Some(t) => t.readers.push(s),
                    None => tasks.push(Task { kv_head, segments, readers: vec![s] }),
                }
            }
        }
    }
    tasks
}

/// Whether two segment lists are the same rows of the same buffers.
fn same_rows(a: &[Segment<'_>], b: &[Segment<'_>]) -> bool {
    let same = |x: &[f16], y: &[f16]| std::ptr::eq(x, y);
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| same(x.keys, y.keys) && same(x.values, y.values))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain textbook attention, one query head at a time, over one buffer.
    fn reference(h: Heads, kv_head: usize, kv: &KvRun<'_>, q: &[f32]) -> Vec<f32> {
        let hd = h.head_dim;
        let group = h.heads / h.kv_heads;
        let mut out = Vec::new();
        for g in 0..group {
            let qg = &q[(kv_head * group + g) * hd..][..hd];
            let row = |buf: &[f16], j: usize| -> Vec<f32> {
                buf[(kv_head * kv.capacity + j) * hd..][..hd].iter().map(|v| v.to_f32()).collect()
            };
            let s: Vec<f64> = (0..kv.len)
                .map(|j| {
                    row(kv.keys, j)
                        .iter()
                        .zip(qg)
                        .map(|(a, b)| (*a as f64) * (*b as f64))
                        .sum::<f64>()
                        / (hd as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                out.push(
                    (0..kv.len).map(|j| e[j] / z * row(kv.values, j)[d] as f64).sum::<f64>() as f32
                );
            }
        }
        out
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        }
    }

    /// Random keys and values for `cap` positions of every kv head.
    fn buffers(h: Heads, cap: usize, rng: &mut Rng) -> (Vec<f16>, Vec<f16>) {
        let n = h.kv_heads * cap * h.head_dim;
        let keys = (0..n).map(|_| f16::from_f32(rng.next() * 4.0)).collect();
        let values = (0..n).map(|_| f16::from_f32(rng.next())).collect();
        (keys, values)
    }

    /// Positions `from..from + n` of `buf` (capacity `cap`) in a buffer of their own, with
    /// `spare` unfilled (NaN) rows after them.
    fn copy_rows(
        h: Heads,
        buf: &[f16],
        cap: usize,
        from: usize,
        n: usize,
        spare: usize,
    ) -> Vec<f16> {
        let (hd, capacity) = (h.head_dim, n + spare);
        let mut out = vec![f16::from_f32(f32::NAN); h.kv_heads * capacity * hd];
        for kvh in 0..h.kv_heads {
            out[kvh * capacity * hd..][..n * hd]
                .copy_from_slice(&buf[(kvh * cap + from) * hd..][..n * hd]);
        }
        out
    }

    #[test]
    fn matches_textbook_attention_for_every_head_size_kernel_and_split() {
        for head_dim in [20, 64, 128] {
            // One chunk, and several with a short last one.
            check_against_textbook(Heads { heads: 6, kv_heads: 2, head_dim }, 77, 69);
            check_against_textbook(
                Heads { heads: 6, kv_heads: 2, head_dim },
                2 * CHUNK + 40,
                2 * CHUNK + 31,
            );
        }
        // Groups of two and of four lane groups of eight heads (the widest kernel takes three
        // at once).
        check_against_textbook(Heads { heads: 20, kv_heads: 2, head_dim: 64 }, 40, 33);
        check_against_textbook(Heads { heads: 64, kv_heads: 2, head_dim: 64 }, 40, 33);
    }

    fn check_against_textbook(h: Heads, cap: usize, len: usize) {
        let mut rng = Rng(7);
        let (keys, values) = buffers(h, cap, &mut rng);
        let q: Vec<f32> = (0..h.heads * h.head_dim).map(|_| rng.next() * 4.0).collect();
        let whole = KvRun { keys: &keys, values: &values, capacity: cap, len };
        let want: Vec<f32> =
            (0..h.kv_heads).flat_map(|kvh| reference(h, kvh, &whole, &q)).collect();
        // The same positions as two runs in buffers of their own (a shared prompt head, then the
        // sequence's own rows, with spare capacity), split inside a chunk.
        let split = len / 2 + 3;
        let (ka, va) =
            (copy_rows(h, &keys, cap, 0, split, 0), copy_rows(h, &values, cap, 0, split, 0));
        let (kb, vb) = (
            copy_rows(h, &keys, cap, split, len - split, 5),
            copy_rows(h, &values, cap, split, len - split, 5),
        );
        let one = KvView { runs: vec![KvRun { keys: &keys, values: &values, capacity: cap, len }] };
        let two = KvView {
            runs: vec![
                KvRun { keys: &ka, values: &va, capacity: split, len: split },
                KvRun { keys: &kb, values: &vb, capacity: len - split + 5, len: len - split },
            ],
        };
        for kernel in chunk::all_available() {
            let a = attend_batch_with(kernel, h, std::slice::from_ref(&one), &q);
            let b = attend_batch_with(kernel, h, std::slice::from_ref(&two), &q);
            for ((x, y), w) in a.iter().zip(&b).zip(&want) {
                assert!(
                    (x - w).abs() < 1e-5,
                    "head size {}, {len} positions: {x} vs {w}",
                    h.head_dim
                );
                assert_eq!(x.to_bits(), y.to_bits(), "one buffer or two give the same bits");
            }
        }
    }

    #[test]
    fn a_sequence_gets_the_same_bits_alone_and_in_a_batch_that_shares_its_prompt() {
        let h = Heads { heads: 12, kv_heads: 2, head_dim: 128 };
        let mut rng = Rng(11);
        // A shared prompt head of 3.5 chunks, then each sequence's own rows.
        let shared = 3 * CHUNK + CHUNK / 2;
        let (ks, vs) = buffers(h, shared, &mut rng);
        let own: Vec<(Vec<f16>, Vec<f16>, usize)> = [5, 90, 1]
            .iter()
            .map(|&n| {
                let (k, v) = buffers(h, n + 7, &mut rng);
                (k, v, n)
            })
            .collect();
        let view = |i: usize| KvView {
            runs: vec![
                KvRun { keys: &ks, values: &vs, capacity: shared, len: shared },
                KvRun { keys: &own[i].0, values: &own[i].1, capacity: own[i].2 + 7, len: own[i].2 },
            ],
        };
        let views: Vec<KvView<'_>> = (0..own.len()).map(view).collect();
        let width = h.heads * h.head_dim;
        let q: Vec<f32> = (0..own.len() * width).map(|_| rng.next() * 4.0).collect();
        // The shared chunks are one task for the three sequences.
        let tasks = plan(h, &views);
        assert_eq!(tasks.iter().filter(|t| t.readers.len() == 3).count(), 3 * h.kv_heads);
        for kernel in chunk::all_available() {
            let batch = attend_batch_with(kernel, h, &views, &q);
            for i in 0..own.len() {
                let alone =
                    attend_batch_with(kernel, h, &[view(i)], &q[i * width..(i + 1) * width]);
                let same = alone
                    .iter()
                    .zip(&batch[i * width..(i + 1) * width])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "sequence {i} differs in the batch");
            }
        }
    }
}
