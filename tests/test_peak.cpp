// tests/test_peak.cpp — the FMA-peak microbenchmark (kernels/cpu/peak.hpp) gives sane numbers.
// The machine may be shared, so nothing here asserts a speed beyond what no load can
// break: a peak is positive and finite and not below one dependent scalar chain
// (which is L * P = 8 or more times slower on any core with FMA units).
#include <doctest/doctest.h>

#include <softbio/kernels/cpu/peak.hpp>

#include <cmath>
#include <cstring>

using namespace softbio;

namespace {
// Short runs: the whole file takes well under a second.
const cpu::PeakTiming kQuick{0.005, 3};
}  // namespace

TEST_CASE("peak: fp32 FMA peak is positive, finite and not below a plain scalar loop") {
    const double scalar = cpu::scalar_chain_gflops(kQuick);
    const cpu::Peak one = cpu::measure_fma_peak(1, kQuick);
    MESSAGE("fp32 ", one.isa, ": ", one.gflops, " GFLOP/s on 1 thread; one scalar chain ", scalar, " GFLOP/s");
    CHECK(std::isfinite(scalar));
    CHECK(scalar > 0);
    CHECK(std::isfinite(one.gflops));
    CHECK(one.available());
    CHECK(one.threads == 1);
    CHECK(one.gflops >= scalar);
    CHECK(std::strcmp(one.isa, cpu::fp32_peak_isa()) == 0);

    const cpu::Peak two = cpu::measure_fma_peak(2, kQuick);
    CHECK(std::isfinite(two.gflops));
    CHECK(two.gflops > 0);
    CHECK(two.threads >= 1);
    CHECK(two.threads <= 2);
}

TEST_CASE("peak: bf16 peak is measured with AVX512_BF16 and reported unavailable without") {
    const cpu::Peak p = cpu::measure_bf16_peak(1, kQuick);
    if (cpu::bf16_peak_available()) {
        CHECK(std::isfinite(p.gflops));
        CHECK(p.available());
        CHECK(p.gflops >= cpu::scalar_chain_gflops(kQuick));
        CHECK(std::strcmp(p.isa, "avx512_bf16") == 0);
    } else {
        CHECK(p.gflops == 0);
        CHECK_FALSE(p.available());
        CHECK(std::strcmp(p.isa, "unavailable") == 0);
    }
}

TEST_CASE("peak: the per-process cache measures once per thread count") {
    const cpu::Peak a = cpu::fma_peak(1), b = cpu::fma_peak(1);
    CHECK(a.available());
    CHECK(a.gflops == b.gflops);  // the same measurement, not a second one
    CHECK(cpu::bf16_peak(1).available() == cpu::bf16_peak_available());
}
