// tests/cuda/dev_common.cuh — what the GPU tests (tests/cuda/*.cu), the check-and-bench
// drivers (kernels/cuda/dev/*.cu) and softbio-gpu-bench share: skipping without a GPU,
// host <-> device copies of test data, the checks and CUDA-event timing. Not installed
// (it is test code); the targets of tests/cuda/CMakeLists.txt have this folder on their
// include path.
//
// Everything else comes from the one place it is defined:
//  * device memory: softbio::cuda::DeviceArray / DeviceBuffer (softbio/backend/cuda.hpp);
//  * random test data and the tolerance rule for sums of K products: tests/tolerance.hpp
//    (test::random_vector, test::abs_of, test::compare_within_tolerance);
//  * op shapes to test over: tests/shape_grid.hpp.
// Every check poisons the output with NaN first (poison()), so an unwritten element fails.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <softbio/backend/cuda.hpp>

#include "../tolerance.hpp"

namespace softbio::cuda::dev {

/// Exit code ctest treats as "skipped" (SKIP_RETURN_CODE 77).
constexpr int kSkipExitCode = 77;

/// Exit with 77 ("SKIPPED: no CUDA device") when no usable GPU is present; otherwise
/// print what the program runs on.
inline void skip_without_gpu(const char* program) {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        std::printf("SKIPPED: no CUDA device (%s: %s)\n", program,
                    err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount returned 0");
        std::exit(kSkipExitCode);
    }
    cudaDeviceProp prop{};
    SOFTBIO_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("# %s on %s (sm_%d%d, %d SMs, %.0f MiB L2, %.1f GiB)\n", program, prop.name, prop.major, prop.minor,
                prop.multiProcessorCount, prop.l2CacheSize / 1048576.0, prop.totalGlobalMem / 1073741824.0);
}

// ---- test data on the device ------------------------------------------------------------------

/// A device copy of `host` (complete when this returns).
template <class T>
DeviceArray<T> to_device(const std::vector<T>& host) {
    DeviceArray<T> d(host.size());
    if (!host.empty())
        SOFTBIO_CUDA_CHECK(cudaMemcpy(d.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "to_device");
    SOFTBIO_CUDA_CHECK(cudaDeviceSynchronize(), "to_device");
    return d;
}

/// The contents of `d`, after all work queued on the device (any stream) is done.
template <class T>
std::vector<T> to_host(const DeviceArray<T>& d) {
    std::vector<T> h(d.size());
    SOFTBIO_CUDA_CHECK(cudaDeviceSynchronize(), "to_host (sync)");
    if (!h.empty())
        SOFTBIO_CUDA_CHECK(cudaMemcpy(h.data(), d.data(), h.size() * sizeof(T), cudaMemcpyDeviceToHost), "to_host");
    return h;
}

/// Fill with 0xFF bytes (NaN as floats), so that unwritten outputs are detected.
template <class T>
void poison(DeviceArray<T>& d) {
    SOFTBIO_CUDA_CHECK(cudaMemset(d.data(), 0xFF, d.size() * sizeof(T)), "poison");
    SOFTBIO_CUDA_CHECK(cudaDeviceSynchronize(), "poison");
}

// ---- checks -----------------------------------------------------------------------------------

/// Counts checks and failures; prints the first few failures.
struct Checker {
    int checks = 0, failures = 0;
    bool expect(bool ok, const std::string& what) {
        ++checks;
        if (!ok) {
            ++failures;
            if (failures <= 50) std::printf("FAIL: %s\n", what.c_str());
        }
        return ok;
    }
    int finish(const char* program) const {
        std::printf("%s: %d checks, %d failed -> %s\n", program, checks, failures, failures ? "FAILED" : "OK");
        return failures ? 1 : 0;
    }
};

/// tests/tolerance.hpp's rule for sums of `k` products (abs_sum: the same sums over
/// |a_i| |b_i|), as one check of `chk`.
inline bool expect_within_tolerance(const std::vector<float>& got, const std::vector<float>& ref,
                                    const std::vector<float>& abs_sum, double k, const std::string& what, Checker& chk) {
    if (got.size() != ref.size() || abs_sum.size() != ref.size())
        return chk.expect(false, what + ": size mismatch");
    const test::ToleranceReport r = test::compare_within_tolerance(got.data(), ref.data(), abs_sum.data(), ref.size(), k);
    return chk.expect(r.ok(), what + ": " + std::to_string(r.bad) + " of " + std::to_string(ref.size()) +
                                  " outside tolerance" +
                                  (r.bad ? ", first at " + std::to_string(r.first) + ": got " +
                                               std::to_string(got[r.first]) + " ref " + std::to_string(ref[r.first])
                                         : std::string()));
}

/// Same values element by element (NaN matches NaN; 0 matches -0).
inline bool same_values(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (!(a[i] == b[i]) && !(std::isnan(a[i]) && std::isnan(b[i]))) return false;
    return true;
}

// ---- timing and options -----------------------------------------------------------------------

struct Timing {
    double median_ms = 0, min_ms = 0;
};

/// Median and minimum milliseconds of `iters` runs of f() (after `warmup` runs), each
/// timed with CUDA events on `stream` (f must enqueue on it) and waited for before the
/// next, as a latency-bound caller would.
template <class F>
Timing time_ms(F&& f, cudaStream_t stream, int iters = 20, int warmup = 3) {
    for (int i = 0; i < warmup; ++i) f();
    SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(stream), "warm-up");
    cudaEvent_t a, b;
    SOFTBIO_CUDA_CHECK(cudaEventCreate(&a), "cudaEventCreate");
    SOFTBIO_CUDA_CHECK(cudaEventCreate(&b), "cudaEventCreate");
    std::vector<double> ms;
    for (int i = 0; i < std::max(1, iters); ++i) {
        SOFTBIO_CUDA_CHECK(cudaEventRecord(a, stream), "cudaEventRecord");
        f();
        SOFTBIO_CUDA_CHECK(cudaEventRecord(b, stream), "cudaEventRecord");
        SOFTBIO_CUDA_CHECK(cudaEventSynchronize(b), "cudaEventSynchronize");
        float t = 0;
        SOFTBIO_CUDA_CHECK(cudaEventElapsedTime(&t, a, b), "cudaEventElapsedTime");
        ms.push_back(t);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return {ms[ms.size() / 2], ms.front()};
}

/// Command-line option "--name value" (default when absent).
inline std::string string_arg(int argc, char** argv, const char* name, const std::string& def) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == name) return argv[i + 1];
    return def;
}
inline int int_arg(int argc, char** argv, const char* name, int def) {
    return std::atoi(string_arg(argc, argv, name, std::to_string(def)).c_str());
}
inline bool flag_arg(int argc, char** argv, const char* name) {
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == name) return true;
    return false;
}

}  // namespace softbio::cuda::dev
