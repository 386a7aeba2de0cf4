// kernels/cpu/peak.hpp — this machine's arithmetic peak, measured: the roof of a roofline.
//
// A kernel's GFLOP/s says little until it is compared with what the cores can do at most.
// This header measures that ceiling directly instead of trusting a data sheet (clock
// speeds, turbo, SMT neighbours and a shared machine all move it):
//
//   fp32   peak of fused multiply-adds, a = a * m + c, on the widest vectors the compiler
//          targets (chosen at compile time):
//            AVX-512 (__AVX512F__)       vfmadd on 16 floats = 16 mul + 16 add = 32 FLOP
//            AVX2 + FMA (__FMA__)        vfmadd on  8 floats =  8 mul +  8 add = 16 FLOP
//            otherwise, plain C++        a * m + c on 1 float                  =  2 FLOP
//                                        (the compiler may vectorise it; the count of
//                                        FLOPs done is the same, only the speed changes)
//   bf16   AVX512_BF16's vdpbf16ps (__AVX512BF16__): each of the 16 fp32 lanes adds the
//          products of one pair of bf16 values, acc += x0*y0 + x1*y1, so one instruction
//          does 32 multiplies and 32 adds = 64 FLOP. Without the instruction set the bf16
//          peak is reported as unavailable (gflops = 0).
//
// Why many independent chains. One FMA's result is ready only after its latency L
// (4 cycles on current x86 cores, 5-6 for vdpbf16ps), and a core starts up to P FMAs per
// cycle (P = 2 FMA ports on Zen 4/5 and server Intel cores). A loop in which every FMA
// needs the previous one's result (a single chain) therefore runs at 1 FMA per L cycles,
// L * P times below the peak. With at least L * P independent accumulators (the chains)
// a new FMA can start on every port on every cycle. We use 16 chains with AVX-512 and for
// bf16 (32 vector registers: 16 accumulators + 2 operands), 12 with AVX2 (16 registers),
// 8 in plain C++: more than L * P = 8-12 for every core above, and no spill to memory.
//
// The loop has no loads or stores (the operands stay in registers), so memory plays no
// part: this is the compute roof. Peak for N threads: N copies of the loop run at once in
// one OpenMP parallel region; each thread's FLOPs over its own CPU time
// (CLOCK_THREAD_CPUTIME_ID), summed. CPU time, not wall time, so that on a shared machine
// the time a thread waits for a core is not counted: the result is what the N cores do
// while they run the loop together (shared clocks, SMT siblings and all), the hardware
// roof, not what was left of it for us. (Hence N should not exceed the cores: N threads
// on one core would each report that core's whole rate.) Each measurement is the best of
// a few trials (the least disturbed run), after one single-thread warm-up that also
// calibrates the iteration count to the asked duration.
//
//   double p = softbio::cpu::fma_peak(threads).gflops;   // measured once per process
//   100 * kernel_gflops / p                              // "% of peak"
//
// scalar_chain_gflops() measures the single dependent chain, the latency bound above.
// Build with optimisation (-O2 or more): at -O0 the accumulators live in memory and the
// loop measures loads and stores instead.
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

#include <time.h>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace softbio::cpu {

/// One measured peak.
struct Peak {
    double gflops = 0;             // 0 when the instructions are not available
    int threads = 1;               // threads that actually ran
    const char* isa = "unavailable";
    bool available() const { return gflops > 0; }
};

/// How long to measure: the best of `trials` runs of about `seconds` each.
struct PeakTiming {
    double seconds = 0.02;
    int trials = 8;
};

namespace peak_detail {

// Inputs read through volatile so the compiler cannot fold the loops away.
inline volatile float g_mul = 0.5f, g_add = 1.0f, g_x = 0.25f, g_y = 0.75f;
inline volatile float g_sink = 0;

#if defined(__AVX512F__)
// (Not _mm512_reduce_add_ps: g++ 12's version trips -Wuninitialized in its own header.)
inline float sum_lanes(__m512 v) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    float s = 0;
    for (float x : lanes) s += x;
    return s;
}
#endif

// a = a * 0.5 + 1 converges to 2 and stays there: no overflow, no denormals.
#if defined(__AVX512F__)
constexpr const char* kFp32Isa = "avx512f";
constexpr int kFp32Chains = 16;
constexpr double kFp32FlopsPerStep = kFp32Chains * 16 * 2.0;
inline float fp32_loop(long iters) {
    const __m512 m = _mm512_set1_ps(g_mul), c = _mm512_set1_ps(g_add);
    __m512 a[kFp32Chains];
    for (int j = 0; j < kFp32Chains; ++j) a[j] = _mm512_set1_ps(float(j));
    for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
        for (int j = 0; j < kFp32Chains; ++j) a[j] = _mm512_fmadd_ps(a[j], m, c);
    }
    for (int j = 1; j < kFp32Chains; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
    return sum_lanes(a[0]);
}
#elif defined(__FMA__)
constexpr const char* kFp32Isa = "avx2+fma";
constexpr int kFp32Chains = 12;
constexpr double kFp32FlopsPerStep = kFp32Chains * 8 * 2.0;
inline float fp32_loop(long iters) {
    const __m256 m = _mm256_set1_ps(g_mul), c = _mm256_set1_ps(g_add);
    __m256 a[kFp32Chains];
    for (int j = 0; j < kFp32Chains; ++j) a[j] = _mm256_set1_ps(float(j));
    for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < kFp32Chains; ++j) a[j] = _mm256_fmadd_ps(a[j], m, c);
    }
    for (int j = 1; j < kFp32Chains; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, a[0]);
    float s = 0;
    for (float v : lanes) s += v;
    return s;
}
#else
constexpr const char* kFp32Isa = "scalar";
constexpr int kFp32Chains = 8;
constexpr double kFp32FlopsPerStep = kFp32Chains * 2.0;
inline float fp32_loop(long iters) {
    const float m = g_mul, c = g_add;
    float a[kFp32Chains];
    for (int j = 0; j < kFp32Chains; ++j) a[j] = float(j);
    for (long i = 0; i < iters; ++i)
        for (int j = 0; j < kFp32Chains; ++j) a[j] = a[j] * m + c;
    float s = 0;
    for (float v : a) s += v;
    return s;
}
#endif

// acc += x*y + x*(-y) per lane: exactly zero is added, the accumulators stay put.
#if defined(__AVX512BF16__) && defined(__AVX512F__)
constexpr bool kHasBf16 = true;
constexpr int kBf16Chains = 16;
constexpr double kBf16FlopsPerStep = kBf16Chains * 32 * 2.0;
inline float bf16_loop(long iters) {
    const float x = g_x, y = g_y;
    const __m512 xs = _mm512_set1_ps(x);
    const __m512 ys = _mm512_setr_ps(y, -y, y, -y, y, -y, y, -y, y, -y, y, -y, y, -y, y, -y);
    const __m512bh bx = _mm512_cvtne2ps_pbh(xs, xs), by = _mm512_cvtne2ps_pbh(ys, ys);
    __m512 a[kBf16Chains];
    for (int j = 0; j < kBf16Chains; ++j) a[j] = _mm512_set1_ps(float(j));
    for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
        for (int j = 0; j < kBf16Chains; ++j) a[j] = _mm512_dpbf16_ps(a[j], bx, by);
    }
    for (int j = 1; j < kBf16Chains; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
    return sum_lanes(a[0]);
}
#else
constexpr bool kHasBf16 = false;
constexpr int kBf16Chains = 0;
constexpr double kBf16FlopsPerStep = 0;
inline float bf16_loop(long) { return 0; }
#endif

// One dependent chain in plain C++: each step waits for the previous one.
inline float scalar_chain_loop(long iters) {
    const float m = g_mul, c = g_add;
    float a = 0;
    for (long i = 0; i < iters; ++i) a = a * m + c;
    return a;
}

inline double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds this thread has run on a CPU (not counting time it waited to be scheduled);
// wall time where the system has no per-thread clock.
inline double thread_cpu_s() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
    timespec ts{};
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
#endif
    return now_s();
}

// `loop` in `threads` threads at once; each thread's rate over its own CPU time, summed
// (GFLOP/s). Sets `team` to the threads that ran.
template <class Loop>
double run_once(Loop loop, double flops_per_step, long iters, int threads, int& team) {
    float sink = 0;
    double gflops = 0;
    team = 1;
    auto one = [&](float& s) {
        const double t0 = thread_cpu_s();
        s += loop(iters);
        const double t = std::max(thread_cpu_s() - t0, 1e-9);
        return flops_per_step * double(iters) / t / 1e9;
    };
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : sink, gflops)
    {
        gflops += one(sink);
#pragma omp single nowait
        team = omp_get_num_threads();
    }
#else
    (void)threads;
    gflops = one(sink);
#endif
    g_sink = sink;
    return gflops;
}

// Best rate over timing.trials runs of about timing.seconds each; GFLOP/s.
template <class Loop>
double best_gflops(Loop loop, double flops_per_step, int threads, const PeakTiming& timing, int& team) {
    // Warm-up and calibration on this thread alone: grow the count until one run takes a
    // tenth of the target, then scale it to the target.
    long iters = 1000;
    for (;;) {
        const double t0 = thread_cpu_s();
        g_sink = loop(iters);
        const double t = thread_cpu_s() - t0;
        if (t >= timing.seconds / 10 || iters > (1L << 40)) {
            iters = std::max(1L, long(double(iters) * timing.seconds / std::max(t, 1e-9)));
            break;
        }
        iters *= 4;
    }
    double best = 0;
    for (int r = 0; r < std::max(1, timing.trials); ++r)
        best = std::max(best, run_once(loop, flops_per_step, iters, threads, team));
    return best;
}

}  // namespace peak_detail

/// Name of the fp32 code path this build uses: "avx512f", "avx2+fma" or "scalar".
constexpr const char* fp32_peak_isa() { return peak_detail::kFp32Isa; }
/// Whether this build can measure (and use) AVX512_BF16.
constexpr bool bf16_peak_available() { return peak_detail::kHasBf16; }

/// fp32 FMA peak of `threads` threads (independent chains, no memory traffic).
inline Peak measure_fma_peak(int threads, const PeakTiming& timing = {}) {
    Peak p;
    p.isa = peak_detail::kFp32Isa;
    p.gflops = peak_detail::best_gflops(peak_detail::fp32_loop, peak_detail::kFp32FlopsPerStep, std::max(1, threads),
                                        timing, p.threads);
    return p;
}

/// bf16 dot-product peak (vdpbf16ps, fp32 accumulation); gflops = 0 when unavailable.
inline Peak measure_bf16_peak(int threads, const PeakTiming& timing = {}) {
    Peak p;
    p.threads = std::max(1, threads);
    if (!peak_detail::kHasBf16) return p;
    p.isa = "avx512_bf16";
    p.gflops = peak_detail::best_gflops(peak_detail::bf16_loop, peak_detail::kBf16FlopsPerStep, p.threads, timing,
                                        p.threads);
    return p;
}

/// One thread, one dependent chain of a * m + c in plain C++: the latency-bound rate
/// (a floor that every peak above must exceed).
inline double scalar_chain_gflops(const PeakTiming& timing = {}) {
    int team = 1;
    return peak_detail::best_gflops(peak_detail::scalar_chain_loop, 2.0, 1, timing, team);
}

namespace peak_detail {
inline Peak cached(bool bf16, int threads) {
    static std::mutex mutex;
    static std::map<std::pair<bool, int>, Peak> cache;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find({bf16, threads});
    if (it == cache.end())
        it = cache.emplace(std::make_pair(bf16, threads), bf16 ? measure_bf16_peak(threads) : measure_fma_peak(threads))
                 .first;
    return it->second;
}
}  // namespace peak_detail

/// fp32 peak for `threads`, measured on the first call (about 0.2 s) and cached per process.
inline Peak fma_peak(int threads) { return peak_detail::cached(false, std::max(1, threads)); }
/// bf16 peak for `threads`, cached likewise (gflops = 0 without AVX512_BF16).
inline Peak bf16_peak(int threads) { return peak_detail::cached(true, std::max(1, threads)); }

}  // namespace softbio::cpu
