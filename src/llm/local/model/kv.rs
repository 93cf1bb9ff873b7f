//! Per-sequence key/value cache: one pre-allocated buffer per layer that grows by doubling, so a
//! decode step writes one row in place instead of concatenating the whole history.
//!
//! On the CPU the cache holds f16 (as llama.cpp does by default): half the memory per position
//! (28 KB instead of 57 KB for the 1.5B model), and half of what decode attention reads. Other
//! devices keep f32.
//!
//! A prompt head is kept once: a cache restored from the prefix cache reads its first positions
//! from the snapshot (and the snapshot's parents) instead of copying them, so the seeds of one
//! optimization, which share their system prompt, hold it once between them; a snapshot taken
//! of such a cache copies only what the cache added.

use crate::error::{Error, Result};
use crate::llm::local::kernels::attention::{KvRun, KvView};
use candle_core::{CpuStorage, DType, Device, Layout, Storage, StorageRef, Tensor};
use half::f16;
use std::sync::Arc;

/// Parents a snapshot may have before a new one is copied whole: bounds the runs that attention
/// walks and how much memory a chain keeps alive.
const MAX_CHAIN: usize = 8;

/// The keys and values of one sequence, every layer, positions `0..len`.
pub struct KvCache {
    /// Positions `0..shared` are this snapshot's (read-only, shared with other caches).
    parent: Option<Arc<KvSnapshot>>,
    shared: usize,
    /// Per layer: keys and values of positions `shared..`, each `[kv_heads, capacity,
    /// head_dim]`; empty until the first [`KvCache::reserve`].
    layers: Vec<(Tensor, Tensor)>,
    n_layers: usize,
    len: usize,
    /// Own positions the buffers hold room for.
    capacity: usize,
    kv_heads: usize,
    head_dim: usize,
    device: Device,
    dtype: DType,
}

/// A detached copy of the first `len` positions of a cache (what the prefix cache keeps).
///
/// Like a cache, a snapshot may take positions `0..base` from a parent snapshot and hold only
/// the rest itself.
pub struct KvSnapshot {
    parent: Option<Arc<KvSnapshot>>,
    base: usize,
    /// Per layer: keys and values of positions `base..len`, each `[kv_heads, len - base,
    /// head_dim]`, contiguous.
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
}

/// Consecutive positions of one layer in one buffer `[kv_heads, capacity, head_dim]`: rows
/// `0..len` of it.
struct Run<'a> {
    keys: &'a Tensor,
    values: &'a Tensor,
    len: usize,
}

fn t(op: &str) -> impl FnOnce(candle_core::Error) -> Error + '_ {
    move |e| Error::tensor(op, e)
}

impl KvCache {
    pub fn new(layers: usize, kv_heads: usize, head_dim: usize, device: &Device) -> Self {
        KvCache {
            parent: None,
            shared: 0,
            layers: Vec::new(),
            n_layers: layers,
            len: 0,
            capacity: 0,
            kv_heads,
            head_dim,
            device: device.clone(),
            dtype: if device.is_cpu() { DType::F16 } else { DType::F32 },
        }
    }

    /// A cache whose first `n` positions are `snap`'s, read in place, with room for `extra`
    /// more of its own.
    pub fn from_snapshot(
        snap: &Arc<KvSnapshot>,
        n: usize,
        extra: usize,
        n_layers: usize,
        kv_heads: usize,
        head_dim: usize,
        device: &Device,
    ) -> Result<Self> {
        let mut cache = KvCache::new(n_layers, kv_heads, head_dim, device);
        let n = n.min(snap.len);
        if n > 0 {
            cache.parent = Some(snap.clone());
            cache.shared = n;
            cache.len = n;
        }
        cache.reserve(extra.max(1))?;
        Ok(cache)
    }

    /// The element type of the buffers.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the cache's own buffers (capacity, not length; not the shared part).
    pub fn bytes(&self) -> usize {
        self.n_layers
            * 2
            * self.kv_heads
            * self.capacity
            * self.head_dim
            * self.dtype.size_in_bytes()
    }

    /// Makes room for `extra` more positions, keeping the current contents.
    pub fn reserve(&mut self, extra: usize) -> Result<()> {
        let own = self.len - self.shared;
        let needed = own + extra;
        if needed <= self.capacity && !self.layers.is_empty() {
            return Ok(());
        }
        let capacity = needed.max(self.capacity * 2).max(1).next_multiple_of(64);
        let shape = (self.kv_heads, capacity, self.head_dim);
        let mut layers = Vec::with_capacity(self.n_layers);
        for i in 0..self.n_layers {
            let nk = Tensor::zeros(shape, self.dtype, &self.device).map_err(t("kv alloc"))?;
            let nv = Tensor::zeros(shape, self.dtype, &self.device).map_err(t("kv alloc"))?;
            if own > 0 {
                let (k, v) = &self.layers[i];
                let ok = k.narrow(1, 0, own).and_then(|x| x.contiguous()).map_err(t("kv grow"))?;
                let ov = v.narrow(1, 0, own).and_then(|x| x.contiguous()).map_err(t("kv grow"))?;
                nk.slice_set(&ok, 1, 0).map_err(t("kv grow"))?;
                nv.slice_set(&ov, 1, 0).map_err(t("kv grow"))?;
            }
            layers.push((nk, nv));
        }
        self.layers = layers;
        self.capacity = capacity;
        Ok(())
    }

    /// Writes `k`, `v` (`[kv_heads, n, head_dim]`) of `layer` at the current end and returns
    /// all `len + n` positions, each `[kv_heads, len + n, head_dim]` (the shared part copied in
    /// front of the cache's own). Call [`KvCache::reserve`] first and [`KvCache::advance`] once
    /// every layer has been written.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = self.write(layer, k, v)?;
        gather(&self.runs(layer, self.len + n), 0, false)
    }

    /// [`KvCache::append`] without gathering the positions back: returns how many were written.
    pub fn write(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<usize> {
        let n = k.dim(1).map_err(t("kv append"))?;
        let own = self.len - self.shared;
        if own + n > self.capacity || layer >= self.layers.len() {
            return Err(Error::tensor(
                "kv append",
                candle_core::Error::Msg("kv cache not reserved".into()),
            ));
        }
        let (kb, vb) = &self.layers[layer];
        kb.slice_set(
            &k.to_dtype(self.dtype).and_then(|k| k.contiguous()).map_err(t("kv append"))?,
            1,
            own,
        )
        .map_err(t("kv append"))?;
        vb.slice_set(
            &v.to_dtype(self.dtype).and_then(|v| v.contiguous()).map_err(t("kv append"))?,
            1,
            own,
        )
        .map_err(t("kv append"))?;
        Ok(n)
    }

    /// Writes one position of `layer` (keys and values, each `[kv_heads * head_dim]`) `ahead`
    /// positions past the current end, straight into the buffers: the decode step's append on
    /// the CPU, where the cache holds f16 (a step that verifies guessed tokens writes several).
    /// Call [`KvCache::reserve`] first and [`KvCache::advance`] once every layer has been
    /// written.
    pub fn write_position(
        &mut self,
        layer: usize,
        ahead: usize,
        k: &[f32],
        v: &[f32],
    ) -> Result<()> {
        let row = self.kv_heads * self.head_dim;
        let own = self.len - self.shared + ahead;
        if own >= self.capacity || layer >= self.layers.len() || k.len() != row || v.len() != row {
            return Err(Error::invalid(
                "kv cache",
                "write past the reserved room or of the wrong width",
            ));
        }
        let (kb, vb) = &self.layers[layer];
        let (head_dim, head_stride, at) =
            (self.head_dim, self.capacity * self.head_dim, own * self.head_dim);
        kb.inplace_op1(&WritePosition { rows: k, head_dim, head_stride, at })
            .map_err(t("kv write"))?;
        vb.inplace_op1(&WritePosition { rows: v, head_dim, head_stride, at })
            .map_err(t("kv write"))?;
        Ok(())
    }

    /// Read access to `layer`'s f16 buffers on the CPU (the shared runs, then the cache's own),
    /// for decode attention over positions `0..len`.
    pub fn layer_f16(&self, layer: usize, len: usize) -> Result<LayerF16<'_>> {
        if layer >= self.layers.len() || len > self.shared + self.capacity {
            return Err(Error::invalid("kv cache", "layer not reserved"));
        }
        let runs = self
            .runs(layer, len)
            .into_iter()
            .map(|r| {
                (
                    r.keys.storage_and_layout(),
                    r.values.storage_and_layout(),
                    r.keys.dims().get(1).copied().unwrap_or(0),
                    r.len,
                )
            })
            .collect();
        Ok(LayerF16 { runs })
    }

    pub fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Forgets every position from `len` on (guessed tokens the model did not confirm); the
    /// buffers keep their room and the next write overwrites them. Positions shared with a
    /// snapshot are never dropped.
    pub fn truncate(&mut self, len: usize) {
        self.len = len.clamp(self.shared, self.len);
    }

    /// The runs that hold positions `0..n` of `layer`, in order.
    fn runs(&self, layer: usize, n: usize) -> Vec<Run<'_>> {
        let mut runs = Vec::new();
        push_runs(self.parent.as_deref(), self.shared, &self.layers, layer, n, &mut runs);
        runs
    }

    /// Deep copy of the first `n` positions.
    pub fn snapshot(&self, n: usize) -> Result<KvSnapshot> {
        self.copy_positions(None, 0, n)
    }

    /// A snapshot of the first `n` positions that takes positions `0..shared` from `parent`
    /// and copies only the rest. The caller vouches that this cache's first `shared` positions
    /// are `parent`'s (the cache was restored from it). A long chain is copied whole instead.
    pub fn snapshot_after(
        &self,
        parent: &Arc<KvSnapshot>,
        shared: usize,
        n: usize,
    ) -> Result<KvSnapshot> {
        let n = n.min(self.len);
        // Skip parents that contribute nothing below `shared`: the chain stays as short as
        // the nesting of the prompts, not as long as the history of requests.
        let mut parent = parent.clone();
        let mut shared = shared.min(parent.len).min(n);
        while let Some(grand) = parent.parent.clone().filter(|_| shared <= parent.base) {
            parent = grand;
            shared = shared.min(parent.len);
        }
        if shared == 0 || parent.depth() >= MAX_CHAIN {
            return self.snapshot(n);
        }
        self.copy_positions(Some(parent), shared, n)
    }

    /// A snapshot of positions `base..n` copied from this cache, on top of `parent`.
    fn copy_positions(
        &self,
        parent: Option<Arc<KvSnapshot>>,
        base: usize,
        n: usize,
    ) -> Result<KvSnapshot> {
        let n = n.min(self.len);
        let base = if parent.is_some() { base.min(n) } else { 0 };
        if n == base {
            return Ok(KvSnapshot { parent, base, layers: Vec::new(), len: n });
        }
        let layers = (0..self.layers.len())
            .map(|layer| gather(&self.runs(layer, n), base, true))
            .collect::<Result<Vec<_>>>()?;
        Ok(KvSnapshot { parent, base, layers, len: n })
    }
}

/// Appends the runs that hold positions `0..n` of `layer` for a cache or snapshot whose positions
/// `0..base` are `parent`'s and the rest its own `layers`: the parent's runs first.
fn push_runs<'a>(
    parent: Option<&'a KvSnapshot>,
    base: usize,
    layers: &'a [(Tensor, Tensor)],
    layer: usize,
    n: usize,
    out: &mut Vec<Run<'a>>,
) {
    if let Some(parent) = parent {
        push_runs(parent.parent.as_deref(), parent.base, &parent.layers, layer, n.min(base), out);
    }
    if n > base {
        if let Some((k, v)) = layers.get(layer) {
            out.push(Run { keys: k, values: v, len: n - base });
        }
    }
}

/// Positions `from..` of `runs` (in order) as one `[kv_heads, positions, head_dim]` tensor each
/// of keys and values: a compact copy when `detach` (what a snapshot keeps), else a view where
/// one run holds them all.
fn gather(runs: &[Run<'_>], from: usize, detach: bool) -> Result<(Tensor, Tensor)> {
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    let mut first = 0;
    for r in runs {
        let skip = from.saturating_sub(first).min(r.len);
        if skip < r.len {
            keys.push(r.keys.narrow(1, skip, r.len - skip).map_err(t("kv gather"))?);
            values.push(r.values.narrow(1, skip, r.len - skip).map_err(t("kv gather"))?);
        }
        first += r.len;
    }
    let join = |parts: &[Tensor]| -> candle_core::Result<Tensor> {
        match parts {
            [one] if detach => one.force_contiguous(),
            [one] => Ok(one.clone()),
            _ => Tensor::cat(parts, 1),
        }
    };
    Ok((join(&keys).map_err(t("kv gather"))?, join(&values).map_err(t("kv gather"))?))
}

/// One layer's buffers of a CPU cache, locked for reading: per run, keys, values, the buffer's
/// capacity and the positions used.
pub struct LayerF16<'a> {
    #[allow(clippy::type_complexity)]
    runs: Vec<((StorageRef<'a>, &'a Layout), (StorageRef<'a>, &'a Layout), usize, usize)>,
}

impl LayerF16<'_> {
    /// The runs as attention reads them.
    pub fn view(&self) -> Result<KvView<'_>> {
        let runs = self
            .runs
            .iter()
            .map(|((kg, kl), (vg, vl), capacity, len)| {
                Ok(KvRun {
                    keys: f16_data(kg, kl)?,
                    values: f16_data(vg, vl)?,
                    capacity: *capacity,
                    len: *len,
                })
            })
            .collect::<Result<_>>()?;
        Ok(KvView { runs })
    }
}

/// The f16 data of a contiguous CPU buffer, from its start.
fn f16_data<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f16]> {
    match storage {
        Storage::Cpu(CpuStorage::F16(data)) if layout.is_contiguous() => {
            Ok(&data[layout.start_offset()..])
        }
        _ => Err(Error::invalid("kv cache", "expected a contiguous f16 buffer on the CPU")),
    }
}

/// Writes `rows` (one position, every kv head) into a `[kv_heads, capacity, head_dim]` f16
/// buffer in place, at element `at` of each head's block.
struct WritePosition<'a> {
    rows: &'a [f32],
    head_dim: usize,
    head_stride: usize,
    at: usize,
}

impl candle_core::InplaceOp1 for WritePosition<'_> {
    fn name(&self) -> &'static str {
        "kv-write-position"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F16(data) = storage else { candle_core::bail!("the kv buffer is not f16") };
        let start = layout.start_offset() + self.at;
        for (head, src) in self.rows.chunks_exact(self.head_dim).enumerate() {
            let from = start + head * self.head_stride;
            let Some(dst) = data.get_mut(from..from + self.head_dim) else {
                candle_core::bail!("kv write past the buffer")
            };
            for (d, s) in dst.iter_mut().zip(src) {
                *d = f16::from_f32(*s);
            }
        }
        Ok(())
    }
}

impl KvSnapshot {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes this snapshot holds itself (not its parents').
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|(k, v)| {
                k.elem_count() * k.dtype().size_in_bytes()
                    + v.elem_count() * v.dtype().size_in_bytes()
            })
            .sum()
    }

    /// This snapshot and every parent up its chain.
    pub fn chain(&self) -> impl Iterator<Item = &KvSnapshot> {
        std::iter::successors(Some(self), |s| s.parent.as_deref())
    }

    /// Parents up the chain.
    pub fn depth(&self) -> usize {
        self.chain().count() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(start: f32, n: usize) -> Tensor {
        // [kv_heads=2, n, head_dim=4], values start, start+1, ...
        let data: Vec<f32> = (0..2 * n * 4).map(|i| start + i as f32).collect();
        Tensor::from_vec(data, (2, n, 4), &Device::Cpu).unwrap()
    }

    #[test]
    fn appends_grow_keep_contents_and_snapshot_restores_a_prefix() {
        let mut c = KvCache::new(1, 2, 4, &Device::Cpu);
        let mut all_k = Vec::new();
        for step in 0..40 {
            let n = 1 + step % 5;
            let k = rows(step as f32 * 100.0, n);
            c.reserve(n).unwrap();
            let (kk, vv) = c.append(0, &k, &k).unwrap();
            c.advance(n);
            all_k.push(k);
            assert_eq!(kk.dims(), &[2, c.len(), 4]);
            assert_eq!(vv.dims(), &[2, c.len(), 4]);
        }
        let expected = Tensor::cat(&all_k, 1).unwrap();
        let snap = Arc::new(c.snapshot(c.len()).unwrap());
        assert_eq!(snap.len(), c.len());
        let restored = KvCache::from_snapshot(&snap, 7, 3, 1, 2, 4, &Device::Cpu).unwrap();
        assert_eq!(restored.len(), 7);
        let mut r = restored;
        r.reserve(1).unwrap();
        let (k, _) = r.append(0, &rows(-1.0, 1), &rows(-1.0, 1)).unwrap();
        // (The values are small integers: exact in f16 too.)
        let head = k
            .narrow(1, 0, 7)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(
            head,
            expected.narrow(1, 0, 7).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        // The snapshot holds exactly its positions, not the cache's spare capacity.
        assert!(c.bytes() > snap.bytes());
        assert_eq!(c.dtype(), DType::F16, "the CPU cache holds f16");
        assert_eq!(snap.bytes(), 2 * 2 * snap.len() * 4 * 2);
    }

    /// Layer 0's keys at positions `0..n`, as f32.
    fn keys(c: &KvCache, n: usize) -> Vec<f32> {
        gather(&c.runs(0, n), 0, true)
            .unwrap()
            .0
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn cache_from(snap: &Arc<KvSnapshot>, n: usize, extra: usize) -> KvCache {
        KvCache::from_snapshot(snap, n, extra, 1, 2, 4, &Device::Cpu).unwrap()
    }

    fn push(c: &mut KvCache, start: f32, n: usize) {
        c.reserve(n).unwrap();
        c.append(0, &rows(start, n), &rows(start, n)).unwrap();
        c.advance(n);
    }

    #[test]
    fn chained_snapshots_copy_only_their_own_positions_and_restore_whole() {
        let mut a = KvCache::new(1, 2, 4, &Device::Cpu);
        push(&mut a, 0.0, 10);
        let s1 = Arc::new(a.snapshot(10).unwrap());
        // A second prompt shares the first 6 positions, then goes its own way.
        let mut b = cache_from(&s1, 6, 4);
        push(&mut b, 500.0, 4);
        let s2 = Arc::new(b.snapshot_after(&s1, 6, 10).unwrap());
        assert_eq!(s2.depth(), 1);
        assert_eq!(s2.bytes(), b.snapshot(4).unwrap().bytes(), "only positions 6..10 are copied");
        assert_eq!(keys(&cache_from(&s2, 10, 0), 10), keys(&b, 10));
        assert_eq!(
            keys(&cache_from(&s2, 5, 0), 5),
            keys(&a, 5),
            "a restore inside the shared part"
        );
        // A third shares only 5 positions, all of them s1's: it hangs on s1, not on s2.
        let mut d = cache_from(&s2, 5, 3);
        push(&mut d, 900.0, 3);
        let s3 = Arc::new(d.snapshot_after(&s2, 5, 8).unwrap());
        assert_eq!(s3.depth(), 1);
        assert!(std::ptr::eq(s3.chain().nth(1).unwrap(), &*s1));
        assert_eq!(keys(&cache_from(&s3, 8, 0), 8), keys(&d, 8));
        // A restored cache reads its snapshot in place: its own buffers only hold the new rows.
        let mut big = KvCache::new(1, 2, 4, &Device::Cpu);
        push(&mut big, 0.0, 500);
        let big_snap = Arc::new(big.snapshot(500).unwrap());
        let mut restored = cache_from(&big_snap, 500, 4);
        assert_eq!(restored.len(), 500);
        assert!(restored.bytes() * 4 < big.bytes(), "{} vs {}", restored.bytes(), big.bytes());
        push(&mut restored, 7.0, 3);
        assert!(keys(&restored, 500) == keys(&big, 500), "the shared positions read back");
        assert_eq!(keys(&restored, 503).len(), 503 * 8);
        // Nesting deeper than MAX_CHAIN copies whole instead.
        let mut snap = s2.clone();
        for level in 0..MAX_CHAIN + 2 {
            let n = snap.len();
            let mut c = cache_from(&snap, n, 1);
            push(&mut c, 1000.0 + level as f32, 1);
            snap = Arc::new(c.snapshot_after(&snap, n, n + 1).unwrap());
            assert!(snap.depth() <= MAX_CHAIN);
            assert_eq!(keys(&cache_from(&snap, n + 1, 0), n + 1), keys(&c, n + 1));
        }
    }

    #[test]
    fn appending_without_room_is_an_error() {
        let mut c = KvCache::new(2, 2, 4, &Device::Cpu);
        assert!(c.append(0, &rows(0.0, 1), &rows(0.0, 1)).is_err());
        c.reserve(1).unwrap();
        assert!(c.append(5, &rows(0.0, 1), &rows(0.0, 1)).is_err());
    }
}
