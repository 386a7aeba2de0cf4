// benchmarks/bench_kernels.cpp — Google Benchmark timings of the CPU kernels at the
// shapes that dominate ResNet-101, reported as GFLOP/s (2 FLOP per multiply-add).
//
//   build/benchmarks/bench_kernels --benchmark_min_time=0.5
//
// Args: {H=W, Cin, Cout, kernel, stride, threads}. "Eigen_product" times Eigen's own
// `C.noalias() = A * B` (its internal threading, its own allocation) on the same GEMM
// for comparison with softbio's tiled, pre-planned conv.
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include <softbio/core/tensor.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/pool.hpp>

#include <vector>

using softbio::AlignedBuffer;
using softbio::Conv2dParams;

namespace {

Conv2dParams params_from(const benchmark::State& st) {
    Conv2dParams p;
    p.batch = 1;
    p.in_h = p.in_w = int(st.range(0));
    p.in_c = int(st.range(1));
    p.out_c = int(st.range(2));
    p.kernel_h = p.kernel_w = int(st.range(3));
    p.stride = int(st.range(4));
    p.pad = p.kernel_h / 2;
    return p;
}

void fill(float* p, size_t n) {
    for (size_t i = 0; i < n; ++i) p[i] = float((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
}

void BM_conv2d(benchmark::State& st) {
    const Conv2dParams p = params_from(st);
    const int threads = int(st.range(5));
    AlignedBuffer in(size_t(p.in_h) * p.in_w * p.in_c), w(size_t(p.gemm_k()) * p.out_c), out(p.gemm_m() * p.out_c),
        bias(size_t(p.out_c)), ws(softbio::cpu::conv2d_workspace_floats(p, threads));
    fill(in.data(), in.size());
    fill(w.data(), w.size());
    softbio::Epilogue e;
    e.bias = bias.data();
    e.relu = true;
    for (auto _ : st) {
        softbio::cpu::conv2d(p, in.data(), w.data(), out.data(), e, ws.data(), threads);
        benchmark::DoNotOptimize(out.data());
    }
    st.counters["GFLOP/s"] = benchmark::Counter(2 * p.macs(), benchmark::Counter::kIsIterationInvariantRate);
    st.counters["GFLOP/s"].value /= 1e9;
}

void BM_Eigen_product(benchmark::State& st) {
    const Conv2dParams p = params_from(st);
    const int threads = int(st.range(5));
    Eigen::setNbThreads(threads);
    using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Mat a = Mat::Random(Eigen::Index(p.gemm_m()), p.gemm_k()), b = Mat::Random(p.gemm_k(), p.out_c),
        c(Eigen::Index(p.gemm_m()), p.out_c);
    for (auto _ : st) {
        c.noalias() = a * b;
        benchmark::DoNotOptimize(c.data());
    }
    st.counters["GFLOP/s"] = benchmark::Counter(2 * p.macs(), benchmark::Counter::kIsIterationInvariantRate);
    st.counters["GFLOP/s"].value /= 1e9;
    Eigen::setNbThreads(1);
}

void BM_maxpool_stem(benchmark::State& st) {
    softbio::Pool2dParams p;
    p.batch = 1, p.in_h = p.in_w = 112, p.channels = 64, p.kernel = 3, p.stride = 2, p.pad = 1;
    AlignedBuffer in(size_t(112) * 112 * 64), out(size_t(56) * 56 * 64);
    for (auto _ : st) softbio::cpu::maxpool2d(p, in.data(), out.data(), int(st.range(0)));
    st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(in.size() * 4));
}

// ResNet-101 at 224, batch 1: {H, Cin, Cout, k, stride, threads}
void resnet_shapes(benchmark::internal::Benchmark* b) {
    for (int t : {1, 2}) {
        b->Args({224, 3, 64, 7, 2, t});      // stem
        b->Args({56, 64, 256, 1, 1, t});     // layer1 conv3 / downsample
        b->Args({56, 64, 64, 3, 1, t});      // layer1 conv2
        b->Args({28, 512, 128, 1, 1, t});    // layer2 conv1
        b->Args({28, 128, 128, 3, 1, t});    // layer2 conv2
        b->Args({14, 1024, 256, 1, 1, t});   // layer3 conv1
        b->Args({14, 256, 256, 3, 1, t});    // layer3 conv2 (x23)
        b->Args({7, 2048, 512, 1, 1, t});    // layer4 conv1
        b->Args({7, 512, 512, 3, 1, t});     // layer4 conv2
    }
    b->ArgNames({"hw", "cin", "cout", "k", "s", "threads"});
    b->Unit(benchmark::kMicrosecond);
    b->UseRealTime();
}

void pointwise_shapes(benchmark::internal::Benchmark* b) {
    for (int t : {1, 2}) {
        b->Args({56, 64, 256, 1, 1, t});
        b->Args({28, 512, 128, 1, 1, t});
        b->Args({14, 1024, 256, 1, 1, t});
        b->Args({7, 2048, 512, 1, 1, t});
    }
    b->ArgNames({"hw", "cin", "cout", "k", "s", "threads"});
    b->Unit(benchmark::kMicrosecond);
    b->UseRealTime();
}

}  // namespace

BENCHMARK(BM_conv2d)->Apply(resnet_shapes);
BENCHMARK(BM_Eigen_product)->Apply(pointwise_shapes);
BENCHMARK(BM_maxpool_stem)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_MAIN();
