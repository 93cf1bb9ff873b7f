//! The local engine: a quantized GGUF model run in-process by candle, answering [`Request`]s
//! batched, constrained to their reply schema, with a prefix kv cache.
//!
//! ```no_run
//! use opto::llm::{Llm, Message, Request};
//! use opto::llm::local::{LocalLlm, LocalOptions};
//! let llm = LocalLlm::load("model.gguf", LocalOptions::default())?;
//! let replies = llm.generate(&[Request::new(vec![Message::user("Hello")])]);
//! # Ok::<(), opto::Error>(())
//! ```
//!
//! Map: this file is the facade ([`LocalLlm`], [`LocalOptions`], [`DeviceSpec`]); `model/` is the
//! model and its weights (the GGUF file, `arch/`, the transformer, its kv cache, tokenizer and
//! chat template), `kernels/` our CPU kernels (quantized matmul, decode-step attention), `serve/`
//! the serving side (the engine, the scheduler thread and its running decode batch, sampling,
//! constrained decoding, the prefix cache), `hub/` the model store. `fixture.rs` writes tiny test
//! models and `bench.rs` measures; they serve the tests and `opto bench`, not the library.
//!
//! The modules below keep the paths they had before the folders (`local::gguf`, `local::kv`, ...).

// `bench` and `fixture` are public for the `opto bench llm` command (and `benches/`) and for the
// tests (`tests/`, which need a tiny model without a download); hidden from the docs, they are not
// part of the library's API.
#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod fixture;
pub mod hub;
mod kernels;
pub mod model;
mod serve;

pub use kernels::{attention, qmatmul};
pub use model::{arch, gguf, kv, requant, template, tokenizer, weights};
pub use serve::{cache, constrain, sample};

pub use arch::ModelConfig;
#[doc(hidden)]
pub use bench::{bench_llm, BenchReport};
pub use serve::scheduler::BatchingStats;

use crate::error::{Error, Result};
use crate::llm::{Llm, Message, Reply, Request};
use candle_core::Device;
use gguf::GgufFile;
use serve::engine::Engine;
use serve::scheduler::Scheduler;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use tokenizer::GgufTokenizer;

/// Where the model runs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceSpec {
    type Err = Error;

    /// `cpu`, `cuda`, `cuda:N` or `metal`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid("device", format!("`{s}`: {why} (expected cpu, cuda:N or metal)"))
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "metal" => Ok(DeviceSpec::Metal),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n.parse().map(DeviceSpec::Cuda).map_err(|_| bad("not a GPU index")),
                None => Err(bad("unknown device")),
            },
        }
    }
}

impl DeviceSpec {
    pub fn device(&self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::invalid(
                        "device",
                        "this build has no CUDA support (build with --features cuda)",
                    ));
                }
                Device::new_cuda(*n).map_err(|e| Error::invalid("device", format!("cuda:{n}: {e}")))
            }
            DeviceSpec::Metal => {
                if !cfg!(feature = "metal") {
                    return Err(Error::invalid(
                        "device",
                        "this build has no Metal support (build with --features metal)",
                    ));
                }
                Device::new_metal(0).map_err(|e| Error::invalid("device", format!("metal: {e}")))
            }
        }
    }
}

/// How to run a local model.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Compute threads (0: one per core). Prefer 1 when other heavy work shares the machine.
    /// Our own rayon pool gets this many; candle's quantized matmuls use a process-wide pool
    /// sized once, from `CANDLE_NUM_THREADS` if set, else from the first model loaded.
    pub threads: usize,
    pub device: DeviceSpec,
    /// Prefix kv cache bounds (0 entries or 0 bytes: off).
    pub prefix_cache_entries: usize,
    pub prefix_cache_bytes: usize,
    /// Run a short forward pass after loading, so the first request does not pay for lazy
    /// weight repacking.
    pub warmup: bool,
    /// Speculative decoding: feed tokens guessed from the prompt and forced by the reply grammar
    /// after each sampled token and keep those the model confirms. The output is the same as
    /// without (it changes the number of forward passes only); on when the model decodes on our
    /// CPU kernels, where a verifying pass computes exactly what one-token steps would.
    pub speculate: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            threads: 0,
            device: DeviceSpec::Cpu,
            prefix_cache_entries: 16,
            prefix_cache_bytes: 256 << 20,
            warmup: true,
            speculate: true,
        }
    }
}

/// A GGUF model loaded for generation. It may be shared by any number of threads (in an
/// `Arc`): their requests join one running decode batch, fed by one scheduler thread.
pub struct LocalLlm {
    engine: Arc<Engine>,
    pool: Arc<rayon::ThreadPool>,
    path: PathBuf,
    name: String,
    file_bytes: u64,
    /// The one owner of the decode batch (continuous batching): the compute pool is sized for one.
    scheduler: Scheduler,
}

impl LocalLlm {
    /// Loads a model by id (see `opto models list`; pulled and checked on first use) or by a
    /// `.gguf` path, with the default options: the one call a program needs to get the local model.
    pub fn open(name_or_path: &str) -> Result<Self> {
        Self::load(hub::resolve_model(name_or_path)?, LocalOptions::default())
    }

    /// Loads a GGUF model. Errors name the file and the reason (missing, truncated, corrupt,
    /// unsupported architecture or tokenizer).
    pub fn load(path: impl AsRef<Path>, opts: LocalOptions) -> Result<Self> {
        let path = path.as_ref();
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            opts.threads
        };
        // candle's quantized kernels use a process-wide pool sized from this variable when it is
        // first used; set it before the first load (a later load with another count keeps the
        // first size for those kernels, the rest of the work uses our own pool).
        static SET_CANDLE_THREADS: std::sync::Once = std::sync::Once::new();
        SET_CANDLE_THREADS.call_once(|| {
            if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
                std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
            }
        });
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("opto-llm-{i}"))
            .build()
            .map_err(|e| Error::invalid("threads", e.to_string()))?;
        let device = opts.device.device()?;
        let file_bytes = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        // candle can still panic on inputs we did not foresee; a model file must never take the
        // process down, so a panic while loading becomes an error about the file.
        let load =
            std::panic::AssertUnwindSafe(|| pool.install(|| Engine::load(path, &device, &opts)));
        let engine = std::panic::catch_unwind(load).map_err(|p| {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            gguf::model_err(path, format!("loading failed unexpectedly: {what}"))
        })??;
        let name = match GgufFile::open(path).ok().and_then(|f| f.opt_string("general.name")) {
            Some(n) => n,
            None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        if opts.warmup {
            engine.warmup(&pool)?;
        }
        weights::release_freed_heap();
        let (engine, pool) = (Arc::new(engine), Arc::new(pool));
        let scheduler = Scheduler::start(engine.clone(), pool.clone())?;
        Ok(LocalLlm { engine, pool, path: path.to_path_buf(), name, file_bytes, scheduler })
    }

    /// What the scheduler has done so far: decode steps, the largest batch, requests that joined
    /// a running batch.
    pub fn batching_stats(&self) -> BatchingStats {
        self.scheduler.stats()
    }

    pub fn config(&self) -> &ModelConfig {
        &self.engine.model.cfg
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.engine.tokenizer
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The prompt text that `messages` become (the model's chat template, or ChatML).
    pub fn render_prompt(&self, messages: &[Message]) -> String {
        self.engine.template.render(messages)
    }

    /// Forgets every cached prefix.
    pub fn clear_prefix_cache(&self) {
        self.engine.clear_prefix_cache()
    }

    /// Entries and bytes held by the prefix cache.
    pub fn prefix_cache_usage(&self) -> (usize, usize) {
        self.engine.prefix_cache_usage()
    }

    /// Turns speculative decoding ([`LocalOptions::speculate`]) on or off for the requests
    /// that follow; returns whether it is on (a model that does not decode on our CPU kernels
    /// never speculates).
    pub fn set_speculation(&self, on: bool) -> bool {
        self.engine.set_speculation(on)
    }

    /// Whether decode steps feed guessed tokens.
    pub fn speculates(&self) -> bool {
        self.engine.speculates()
    }
}

impl Llm for LocalLlm {
    /// One submission to the scheduler: the requests decode together, and with any other
    /// thread's requests that are running or arrive meanwhile.
    fn generate(&self, requests: &[Request]) -> Vec<Result<Reply>> {
        self.scheduler.submit(requests)
    }

    fn describe(&self) -> String {
        let c = &self.engine.model.cfg;
        format!(
            "local:{} ({}, {} layers, hidden {}, file {} of {} bytes, {} threads)",
            self.name,
            c.architecture,
            c.layers,
            c.hidden,
            self.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            self.file_bytes,
            self.threads()
        )
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.engine.tokenizer.encode(text).ok().map(|t| t.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("CUDA:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("metal".parse::<DeviceSpec>().unwrap(), DeviceSpec::Metal);
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!("tpu".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn gpu_devices_without_the_feature_are_a_clear_error() {
        if !cfg!(feature = "cuda") {
            let e = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
