//! The graph engine on the reference's anchor workload (`shared/anchors/trace_graph_bench.py`):
//! N additions over K parameters, backward, then summarize + render the OptoPrime prompt.
//! `cargo bench --bench graph`; the same figures one-off: `opto bench graph --ops N --params K`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn anchor(c: &mut Criterion) {
    let mut group = c.benchmark_group("anchor_backward_summarize_prompt");
    group.sample_size(10);
    for (ops, params) in [(1000usize, 10usize), (5000, 10), (20000, 50)] {
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{ops}x{params}")),
            &(ops, params),
            |b, &(ops, params)| b.iter(|| opto::cli::bench::graph_workload(ops, params)),
        );
    }
    group.finish();
}

criterion_group!(benches, anchor);
criterion_main!(benches);
