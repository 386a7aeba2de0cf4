// kernels/cuda/dev/dev_common.cuh — what the check-and-bench drivers in this folder and
// the GPU tests (tests/cuda/*.cu) share: skipping without a GPU, deterministic random
// data, device arrays, the comparison rules and CUDA-event timing.
//
// Comparison rules:
//  * allclose: |a - b| <= atol + rtol * |ref|, elementwise (llm.c's dev/cuda style);
//  * sum_rule: tests/test_util.hpp's rule for sums of K products,
//        |a - ref| <= 8 * 2^-24 * sqrt(K) * S,   S = the same sum over |a_i| |b_i|,
//    which a wrong tap or index fails and fp32 reordering passes.
// Every check poisons the output with NaN first, so an unwritten element fails.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "softbio/kernels/cuda/check.cuh"

namespace softbio::cuda::dev {

/// Exit code ctest treats as "skipped" (SKIP_RETURN_CODE 77).
constexpr int kSkipExitCode = 77;

/// Exit with 77 ("SKIPPED: no CUDA device") when no usable GPU is present.
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

/// SplitMix64, as softbio::SplitMix64 (same numbers): uniform values in [-1, 1).
inline std::vector<float> random_vector(size_t n, uint64_t seed) {
    uint64_t s = seed;
    std::vector<float> v(n);
    for (auto& x : v) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const double u = (double(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
        x = float(u * 2 - 1);
    }
    return v;
}

inline std::vector<float> abs_of(std::vector<float> v) {
    for (auto& x : v) x = std::fabs(x);
    return v;
}

/// A device array of T (cudaMalloc), filled from / read back to std::vector.
template <class T>
class DeviceArray {
public:
    DeviceArray() = default;
    explicit DeviceArray(size_t n, size_t pad_elements = 0) : n_(n) {
        SOFTBIO_CUDA_CHECK(cudaMalloc(&p_, std::max<size_t>(1, n + pad_elements) * sizeof(T)), "DeviceArray");
    }
    explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
    ~DeviceArray() {
        if (p_) cudaFree(p_);
    }
    DeviceArray(DeviceArray&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
    DeviceArray& operator=(DeviceArray&& o) noexcept {
        std::swap(p_, o.p_), std::swap(n_, o.n_);
        return *this;
    }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    T* get() { return p_; }
    const T* get() const { return p_; }
    size_t size() const { return n_; }
    void upload(const std::vector<T>& host) {
        SOFTBIO_CUDA_CHECK(cudaMemcpy(p_, host.data(), std::min(n_, host.size()) * sizeof(T), cudaMemcpyHostToDevice), "upload");
    }
    std::vector<T> download() const {
        std::vector<T> h(n_);
        SOFTBIO_CUDA_CHECK(cudaDeviceSynchronize(), "download (sync)");
        SOFTBIO_CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "download");
        return h;
    }
    /// Fill with NaN bytes (0xFF) so unwritten outputs are detected.
    void poison() { SOFTBIO_CUDA_CHECK(cudaMemset(p_, 0xFF, n_ * sizeof(T)), "poison"); }

private:
    T* p_ = nullptr;
    size_t n_ = 0;
};

/// Counts checks and failures; prints the first few failures of each kind.
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

/// |got - ref| <= atol + rtol * |ref| for every element (NaN fails). Returns the count of
/// violations and reports the worst.
inline size_t allclose(const std::vector<float>& got, const std::vector<float>& ref, double atol, double rtol,
                       const std::string& what, Checker& chk) {
    size_t bad = 0, worst_i = 0;
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double d = std::fabs(double(got[i]) - double(ref[i]));
        if (!(d <= atol + rtol * std::fabs(double(ref[i])))) {
            ++bad;
            if (!(d <= worst)) worst = d, worst_i = i;
        }
    }
    chk.expect(bad == 0 && got.size() == ref.size(),
               what + ": " + std::to_string(bad) + " of " + std::to_string(ref.size()) + " outside atol " +
                   std::to_string(atol) + " + rtol " + std::to_string(rtol) +
                   (bad ? ", worst at " + std::to_string(worst_i) + ": got " + std::to_string(got[worst_i]) + " ref " +
                              std::to_string(ref[worst_i])
                        : std::string()));
    return bad;
}

/// tests/test_util.hpp's rule for sums of k products (see the file comment).
inline size_t sum_rule(const std::vector<float>& got, const std::vector<float>& ref, const std::vector<float>& abs_sum,
                       double k, const std::string& what, Checker& chk) {
    const double u = std::ldexp(1.0, -24);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double tol = 8 * u * std::sqrt(std::max(1.0, k)) * abs_sum[i] + 1e-30;
        if (!(std::fabs(double(got[i]) - double(ref[i])) <= tol)) {
            if (!bad) first = i;
            ++bad;
        }
    }
    chk.expect(bad == 0 && got.size() == ref.size(),
               what + ": " + std::to_string(bad) + " of " + std::to_string(ref.size()) + " outside tolerance" +
                   (bad ? ", first at " + std::to_string(first) + ": got " + std::to_string(got[first]) + " ref " +
                              std::to_string(ref[first])
                        : std::string()));
    return bad;
}

inline bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (!(a[i] == b[i]) && !(std::isnan(a[i]) && std::isnan(b[i]))) return false;
    return true;
}

/// Median milliseconds of `iters` runs of f() (after `warmup`), timed with CUDA events on
/// `stream` (f must enqueue on it).
template <class F>
double time_ms(F&& f, cudaStream_t stream, int iters = 20, int warmup = 3) {
    for (int i = 0; i < warmup; ++i) f();
    cudaEvent_t a, b;
    SOFTBIO_CUDA_CHECK(cudaEventCreate(&a), "cudaEventCreate");
    SOFTBIO_CUDA_CHECK(cudaEventCreate(&b), "cudaEventCreate");
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
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
    return ms[ms.size() / 2];
}

/// Integer command-line option "--name value" (default when absent).
inline int int_arg(int argc, char** argv, const char* name, int def) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == name) return std::atoi(argv[i + 1]);
    return def;
}
inline bool flag_arg(int argc, char** argv, const char* name) {
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == name) return true;
    return false;
}

}  // namespace softbio::cuda::dev
