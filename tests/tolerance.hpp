// tests/tolerance.hpp — the one tolerance rule for comparing a fast kernel with its
// reference, shared by the CPU tests, the CUDA emulator tests, the GPU tests and the
// kernels/cuda/dev drivers. Plain C++ (no doctest, no CUDA): anyone can include it.
//
// RULE. A fast kernel and its reference compute the same sum of K products in a
// different order (the reference in double). The rounding error of an fp32 sum of K
// terms is bounded in practice by
//     |fast - exact| <= c * u * sqrt(K) * S,    S = sum_i |a_i * b_i|,  u = 2^-24
// (random-walk accumulation of the per-add error u|partial sum|). We take c = 8 and get
// S per output by running the reference on |a| and |b|. A bug — a wrong tap, a
// misplaced channel, a missing term — moves an output by about one |a_i b_i| ~ S/K,
// far above this bound for every K used here, so the tests can fail.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <softbio/core/random.hpp>

namespace test {

/// The bound above for one output.
inline double tolerance(double abs_sum, double k) {
    return 8 * std::ldexp(1.0, -24) * std::sqrt(std::max(1.0, k)) * abs_sum + 1e-30;
}

/// How many outputs break the rule, and the first of them.
struct ToleranceReport {
    size_t bad = 0, first = 0;
    double worst_ratio = 0;  // max |fast - ref| / tolerance (for reports)
    bool ok() const { return bad == 0; }
};

inline ToleranceReport compare_within_tolerance(const float* fast, const float* ref, const float* abs_sum, size_t n,
                                                double k) {
    ToleranceReport r;
    for (size_t i = 0; i < n; ++i) {
        const double tol = tolerance(abs_sum[i], k);
        const double err = std::fabs(double(fast[i]) - double(ref[i]));
        if (!(err <= tol)) {  // NaN fails too
            if (!r.bad) r.first = i;
            ++r.bad;
        }
        if (err / tol > r.worst_ratio || std::isnan(err)) r.worst_ratio = std::isnan(err) ? INFINITY : err / tol;
    }
    return r;
}

/// Uniform values in [-1, 1), deterministic (SplitMix64: the same on every platform).
inline std::vector<float> random_vector(size_t n, uint64_t seed) {
    softbio::SplitMix64 rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = float(rng.uniform() * 2 - 1);
    return v;
}

inline std::vector<float> abs_of(const std::vector<float>& v) {
    std::vector<float> a(v.size());
    for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
    return a;
}

}  // namespace test
