// benchmarks/bench_kernels.cpp — Google Benchmark timings of the CPU kernels at the
// shapes that dominate ResNet-101, reported as GFLOP/s (2 FLOP per multiply-add).
//
//   build/benchmarks/bench_kernels --benchmark_min_time=0.5
//
// Args: {H=W, Cin, Cout, kernel, stride, threads, packed}. Each conv runs twice, one
// right after the other (so that a shared machine's noise hits both alike): packed:1 is
// softbio's packed GEMM (kernels/cpu/gemm_packed.hpp: weights packed once into the
// micro-kernel's panels; the engine's default), packed:0 the same conv through Eigen's
// GEBP on the plain [K x Cout] weights (kernels/cpu/gemm.hpp; the baseline,
// LoadOptions::conv_kernel = Eigen). The shapes are ResNet-101's convs at 224 and 128
// input, batch 1, e.g.
//
//   build/benchmarks/bench_kernels --benchmark_filter='BM_conv2d/hw:14/'
//
// "Eigen_product" times Eigen's own `C.noalias() = A * B` (its internal threading, its
// own allocation) on the same GEMM for comparison with softbio's tiled, pre-planned conv.
//
// Roofline: before the benchmarks run, the machine's fp32 FMA peak (and the bf16 one
// where the build targets AVX512_BF16) is measured once per thread count used here
// (kernels/cpu/peak.hpp) and printed; every conv and GEMM then also reports "peak%",
// its GFLOP/s as a percentage of the fp32 peak for the threads it ran on.
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include <softbio/core/tensor.hpp>
#include <softbio/io/load.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/peak.hpp>
#include <softbio/kernels/cpu/pool.hpp>
#include <softbio/kernels/cpu/winograd.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <time.h>

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

// Thread counts the conv and GEMM benchmarks run with (resnet_shapes, pointwise_shapes).
constexpr int kThreadCounts[] = {1, 2};

// GFLOP/s and peak% of a finished run, from the wall time of its timing loop (measured
// here, so that both counters come from one clock and print as plain numbers).
using Clock = std::chrono::steady_clock;
// `bf16`: a bf16 kernel, whose peak% is against the bf16 roof (vdpbf16ps); it also gets
// "fp32_peak%", against the fp32 roof, to show what it gains over fp32's limit.
void set_flop_counters(benchmark::State& st, double flops, int threads, Clock::time_point start, bool bf16 = false) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (st.iterations() == 0 || seconds <= 0) return;
    const double gflops = flops * double(st.iterations()) / seconds / 1e9;
    st.counters["GFLOP/s"] = gflops;
    const double fp32_peak = softbio::cpu::fma_peak(threads).gflops;  // measured once, in main()
    const double peak = bf16 ? softbio::cpu::bf16_peak(threads).gflops : fp32_peak;
    if (peak > 0) st.counters["peak%"] = 100 * gflops / peak;
    if (bf16 && fp32_peak > 0) st.counters["fp32_peak%"] = 100 * gflops / fp32_peak;
}

// The calling thread's CPU time in seconds (CLOCK_THREAD_CPUTIME_ID, as peak.hpp's roof).
double thread_cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Which GEMM a conv benchmark runs: the weights' layout selects it inside cpu::conv2d.
enum class Gemm { Eigen, Packed, Bf16 };

// One conv with bias + ReLU fused, the weights as `gemm` wants them: the plain operand
// (Eigen's GEBP), the packed GEMM's panels (pack_conv_weights_panels) or the bf16 pair
// panels (pack_conv_weights_bf16). Same call in every case.
void run_conv2d(benchmark::State& st, Gemm gemm) {
    if (gemm == Gemm::Bf16 && !softbio::cpu::bf16_gemm_available()) {
        st.SkipWithError("no AVX512_BF16 in this build or on this CPU");
        return;
    }
    const bool packed = gemm == Gemm::Packed;
    const Conv2dParams p = params_from(st);
    const int threads = int(st.range(5));
    AlignedBuffer in(size_t(p.in_h) * p.in_w * p.in_c), w(size_t(p.gemm_k()) * p.out_c), out(p.gemm_m() * p.out_c),
        bias(size_t(p.out_c)), ws(softbio::cpu::conv2d_workspace_floats(p, threads));
    fill(in.data(), in.size());
    fill(w.data(), w.size());
    AlignedBuffer panels(packed ? softbio::cpu::packed_conv_weights_floats(p)
                         : gemm == Gemm::Bf16 ? softbio::cpu::packed_bf16_weights_floats(p)
                                              : 0);
    if (packed) softbio::cpu::pack_conv_weights_panels(p, w.data(), panels.data());
    if (gemm == Gemm::Bf16) softbio::cpu::pack_conv_weights_bf16(p, w.data(), panels.data());
    const float* weights = gemm == Gemm::Eigen ? w.data() : panels.data();
    softbio::Epilogue e;
    e.bias = bias.data();
    e.relu = true;
    const Clock::time_point start = Clock::now();
    const double cpu_start = thread_cpu_seconds();
    for (auto _ : st) {
        softbio::cpu::conv2d(p, in.data(), weights, out.data(), e, ws.data(), threads);
        benchmark::DoNotOptimize(out.data());
    }
    const double cpu_seconds = thread_cpu_seconds() - cpu_start;
    set_flop_counters(st, 2 * double(p.macs()), threads, start, gemm == Gemm::Bf16);
    // With 1 thread the whole conv runs on this thread, so its CPU time is the conv's time
    // without the slices a shared machine gave to other processes: "cpu_GFLOP/s" and
    // "cpu_peak%" (against the roof, which peak.hpp measures in CPU time too) are the
    // numbers to compare on a busy machine. (With 2 threads the other thread's time is
    // not in this clock, so they are left out.)
    if (threads == 1 && cpu_seconds > 0 && st.iterations() > 0) {
        const double gflops = 2 * double(p.macs()) * double(st.iterations()) / cpu_seconds / 1e9;
        st.counters["cpu_GFLOP/s"] = gflops;
        const double peak = gemm == Gemm::Bf16 ? softbio::cpu::bf16_peak(1).gflops : softbio::cpu::fma_peak(1).gflops;
        if (peak > 0) st.counters["cpu_peak%"] = 100 * gflops / peak;
    }
}
void BM_conv2d(benchmark::State& st) { run_conv2d(st, st.range(6) != 0 ? Gemm::Packed : Gemm::Eigen); }
// The same convs in bf16 (kernels/cpu/gemm_bf16.hpp): compare with BM_conv2d's packed:1
// rows; peak% is against the bf16 roof, fp32_peak% against fp32's.
void BM_conv2d_bf16(benchmark::State& st) { run_conv2d(st, Gemm::Bf16); }

// The same 3x3 stride-1 convs by Winograd's F(4x4, 3x3) on the packed GEMM's micro-kernel
// (kernels/cpu/winograd.hpp; LoadOptions::conv_kernel = Winograd, or Auto where it wins):
// compare with BM_conv2d's packed:1 rows of the same shape (same args, same bias + ReLU
// epilogue). GFLOP/s and cpu_GFLOP/s count the direct conv's FLOPs (2 * MACs), so they
// are "effective" rates, directly comparable with the packed:1 rows; cpu_GFLOP/s (1
// thread) from the calling thread's CPU time, as run_conv2d's. "tile_block": TB, the
// tiles per block (winograd_tile_block). Args {H=W, Cin, Cout, 3, 1, threads}.
void BM_conv2d_winograd(benchmark::State& st) {
    const Conv2dParams p = params_from(st);
    const int threads = int(st.range(5));
    AlignedBuffer in(size_t(p.in_h) * p.in_w * p.in_c), w(size_t(p.out_c) * p.in_c * 9), out(p.gemm_m() * p.out_c),
        bias(size_t(p.out_c)), u(softbio::cpu::winograd_weight_floats(p)),
        ws(softbio::cpu::winograd_workspace_floats(p, threads));
    fill(in.data(), in.size());
    fill(w.data(), w.size());
    softbio::cpu::pack_winograd_weights(p, w.data(), nullptr, u.data());
    softbio::Epilogue e;
    e.bias = bias.data();
    e.relu = true;
    const Clock::time_point start = Clock::now();
    const double cpu_start = thread_cpu_seconds();
    for (auto _ : st) {
        softbio::cpu::conv2d_winograd(p, in.data(), u.data(), out.data(), e, ws.data(), threads);
        benchmark::DoNotOptimize(out.data());
    }
    const double cpu_seconds = thread_cpu_seconds() - cpu_start;
    set_flop_counters(st, 2 * double(p.macs()), threads, start);
    if (threads == 1 && cpu_seconds > 0 && st.iterations() > 0) {
        const double gflops = 2 * double(p.macs()) * double(st.iterations()) / cpu_seconds / 1e9;
        st.counters["cpu_GFLOP/s"] = gflops;
        const double peak = softbio::cpu::fma_peak(1).gflops;
        if (peak > 0) st.counters["cpu_peak%"] = 100 * gflops / peak;
    }
    st.counters["tile_block"] = softbio::cpu::winograd_tile_block(p);
}

// A whole ResNet forward pass with each GEMM, one right after the other: the model file
// named by SOFTBIO_BENCH_MODEL (e.g. softbio-make-model --preset torchvision-r101),
// loaded once with LoadOptions::conv_kernel = Packed and once with Eigen. Args:
// {size, batch, threads, packed}; ms per image in "ms/img". Skipped without the variable.
void BM_resnet(benchmark::State& st) {
    const char* path = std::getenv("SOFTBIO_BENCH_MODEL");
    if (!path || !*path) {
        st.SkipWithError("set SOFTBIO_BENCH_MODEL to a ResNet model file");
        return;
    }
    const int size = int(st.range(0)), batch = int(st.range(1)), threads = int(st.range(2));
    const bool packed = st.range(3) != 0;
    static std::map<bool, std::shared_ptr<const softbio::ResNet<softbio::CpuBackend>>> models;
    if (!models[packed]) {
        softbio::LoadOptions opt;
        opt.conv_kernel = packed ? softbio::ConvKernel::Packed : softbio::ConvKernel::Eigen;
        models[packed] = softbio::load_model(path, opt);
    }
    const auto& model = *models[packed];
    auto ws = model.make_workspace(batch, size, size, threads);
    const size_t n = size_t(batch) * ws->input_h() * ws->input_w() * model.arch().in_channels;
    for (size_t i = 0; i < n; ++i) ws->input()[i] = float((i * 2654435761u) % 1000) / 1000.0f;
    model.forward(ws->input(), batch, *ws);  // warm-up
    const Clock::time_point start = Clock::now();
    const double cpu_start = thread_cpu_seconds();
    for (auto _ : st) {
        model.forward(ws->input(), batch, *ws);
        benchmark::DoNotOptimize(ws->logits(0));
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double cpu_seconds = thread_cpu_seconds() - cpu_start;
    if (st.iterations() > 0) {
        st.counters["ms/img"] = 1e3 * seconds / double(st.iterations()) / batch;
        // 1 thread: the calling thread's CPU time (see run_conv2d), for a busy machine.
        if (threads == 1) st.counters["cpu_ms/img"] = 1e3 * cpu_seconds / double(st.iterations()) / batch;
    }
    const double flops = 2 * model.macs({batch, ws->input_h(), ws->input_w(), model.arch().in_channels});
    set_flop_counters(st, flops, threads, start);
}

void resnet_e2e_cases(benchmark::internal::Benchmark* b) {
    for (int t : {2, 1})
        for (auto sb : {std::pair<int, int>{224, 1}, {128, 1}, {224, 8}})
            for (int packed : {1, 0}) b->Args({sb.first, sb.second, t, packed});
    b->ArgNames({"size", "batch", "threads", "packed"});
    b->Unit(benchmark::kMillisecond);
    b->UseRealTime();
}

void BM_Eigen_product(benchmark::State& st) {
    const Conv2dParams p = params_from(st);
    const int threads = int(st.range(5));
    Eigen::setNbThreads(threads);
    using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Mat a = Mat::Random(Eigen::Index(p.gemm_m()), p.gemm_k()), b = Mat::Random(p.gemm_k(), p.out_c),
        c(Eigen::Index(p.gemm_m()), p.out_c);
    const Clock::time_point start = Clock::now();
    for (auto _ : st) {
        c.noalias() = a * b;
        benchmark::DoNotOptimize(c.data());
    }
    set_flop_counters(st, 2 * double(p.macs()), threads, start);
    Eigen::setNbThreads(1);
}

void BM_maxpool_stem(benchmark::State& st) {
    softbio::Pool2dParams p;
    p.batch = 1, p.in_h = p.in_w = 112, p.channels = 64, p.kernel = 3, p.stride = 2, p.pad = 1;
    AlignedBuffer in(size_t(112) * 112 * 64), out(size_t(56) * 56 * 64);
    for (auto _ : st) softbio::cpu::maxpool2d(p, in.data(), out.data(), int(st.range(0)));
    st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(in.size() * 4));
}

// ResNet-101 (bottleneck v1.5: the stride on the 3x3) at 224 and 128, batch 1:
// {H, Cin, Cout, k, stride, threads, packed}, H the conv's input size. Per stage the
// three convs of the repeated block, and the first block's strided 3x3 and downsample;
// each with the packed GEMM (packed:1) and Eigen's (packed:0) in turn.
// ResNet-101's conv shapes at 224 and 128, 1 and 2 threads; `both_gemms`: each twice,
// packed:1 (softbio's GEMM) and packed:0 (Eigen's), else once (BM_conv2d_bf16).
void resnet_conv_shapes(benchmark::internal::Benchmark* b, bool both_gemms) {
    for (int t : {1, 2})
        for (int r : {224, 128}) {
            const int s1 = r / 4, s2 = r / 8, s3 = r / 16, s4 = r / 32;
            const int shapes[][5] = {
                {r, 3, 64, 7, 2},          // stem (K = 147)
                {s1, 256, 64, 1, 1},       // layer1 conv1
                {s1, 64, 64, 3, 1},        // layer1 conv2
                {s1, 64, 256, 1, 1},       // layer1 conv3 / downsample
                {s1, 128, 128, 3, 2},      // layer2.0 conv2 (stride 2)
                {s1, 256, 512, 1, 2},      // layer2.0 downsample
                {s2, 512, 128, 1, 1},      // layer2 conv1
                {s2, 128, 128, 3, 1},      // layer2 conv2
                {s2, 128, 512, 1, 1},      // layer2 conv3
                {s3, 1024, 256, 1, 1},     // layer3 conv1 (x23)
                {s3, 256, 256, 3, 1},      // layer3 conv2 (x23)
                {s3, 256, 1024, 1, 1},     // layer3 conv3 (x23)
                {s3, 1024, 2048, 1, 2},    // layer4.0 downsample
                {s4, 2048, 512, 1, 1},     // layer4 conv1
                {s4, 512, 512, 3, 1},      // layer4 conv2
                {s4, 512, 2048, 1, 1}};    // layer4 conv3
            for (const auto& x : shapes)
                for (int packed : {1, 0})
                    if (both_gemms) b->Args({x[0], x[1], x[2], x[3], x[4], t, packed});
                    else if (packed) b->Args({x[0], x[1], x[2], x[3], x[4], t});
        }
    if (both_gemms) b->ArgNames({"hw", "cin", "cout", "k", "s", "threads", "packed"});
    else b->ArgNames({"hw", "cin", "cout", "k", "s", "threads"});
    b->Unit(benchmark::kMicrosecond);
    b->UseRealTime();
}
void resnet_shapes(benchmark::internal::Benchmark* b) { resnet_conv_shapes(b, true); }
void resnet_shapes_bf16(benchmark::internal::Benchmark* b) { resnet_conv_shapes(b, false); }

// ResNet's 3x3 stride-1 convs at 224 and 128 (one per stage), with the same args as
// BM_conv2d's rows (hw:S/cin:C/cout:C/k:3/s:1/threads:T), so the two compare row by row.
void winograd_shapes(benchmark::internal::Benchmark* b) {
    for (int t : {1, 2})
        for (int r : {224, 128})
            for (int stage = 0; stage < 4; ++stage) {
                const int c = 64 << stage;
                b->Args({r / (4 << stage), c, c, 3, 1, t});
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
BENCHMARK(BM_conv2d_bf16)->Apply(resnet_shapes_bf16);
BENCHMARK(BM_conv2d_winograd)->Apply(winograd_shapes);
BENCHMARK(BM_resnet)->Apply(resnet_e2e_cases);
BENCHMARK(BM_Eigen_product)->Apply(pointwise_shapes);
BENCHMARK(BM_maxpool_stem)->Arg(1)->Arg(2)->UseRealTime();

// BENCHMARK_MAIN, plus the peaks measured first (on the same quiet-or-not machine, in the
// same process) and printed once in the run's context header ("peak_threads_N: ..."; the
// "context" object with --benchmark_format=json).
int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("packed_gemm", std::string(softbio::cpu::packed_gemm_isa()) + " micro-kernel, MR " +
                                                   std::to_string(softbio::cpu::kPackedMR) + " x NR " +
                                                   std::to_string(softbio::cpu::kPackedNR));
    for (int t : kThreadCounts) {
        const softbio::cpu::Peak fp32 = softbio::cpu::fma_peak(t), bf16 = softbio::cpu::bf16_peak(t);
        char line[160];
        std::snprintf(line, sizeof line, "fp32 %.1f GFLOP/s (%s)", fp32.gflops, fp32.isa);
        std::string text = line;
        if (bf16.available())
            std::snprintf(line, sizeof line, ", bf16 %.1f GFLOP/s (%s)", bf16.gflops, bf16.isa);
        else
            std::snprintf(line, sizeof line, ", bf16 unavailable (build without AVX512_BF16)");
        text += line;
        if (fp32.threads != t) text += " [only " + std::to_string(fp32.threads) + " threads ran]";
        benchmark::AddCustomContext("peak_threads_" + std::to_string(t), text);
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
