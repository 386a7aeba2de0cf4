// tests/cuda/mma_tolerance.hpp — how a tensor-core convolution (kernels/cuda/conv2d_mma.cuh)
// is compared with the CPU, shared by the emulator tests (test_cuda_emulated.cpp) and the
// GPU check driver (kernels/cuda/dev/conv2d_check.cu). Plain C++: no CUDA, no doctest.
//
// TWO COMPARISONS, both per output element:
//
// (1) Against the CPU reference run on the inputs the tensor cores see: activations and
//     weights pre-rounded to the precision (tf32: cvt.rna; fp16/bf16: their 16-bit
//     storage), the residual as stored. Only the order of the fp32 accumulation differs
//     then, so tests/tolerance.hpp's fp32 rule applies,
//         |out - ref_rounded| <= h * 8 u sqrt(K) S                      (u = 2^-24)
//     plus, for a 16-bit output, its own rounding: + u_p |ref| (+ 2^-25, fp16's
//     subnormal spacing). h = 1 on the emulator, which rounds each mma's sum once; on a
//     GPU the tensor cores add in their own order and may truncate instead of rounding
//     (per mma of k = 8 or 16 products), so the GPU driver uses h = 4. A wrong tap,
//     channel or fragment, or a missing cvt.rna (unrounded tf32 operands are truncated),
//     moves an output by ~S/K or ~2^-11 S: far outside.
// (2) Against the fp32 reference (unrounded inputs), with the precision's bound: each
//     input carries a relative rounding of at most u_p (2^-11 tf32 / fp16, 2^-8 bf16), so
//     each product at most (2 u_p + u_p^2) |a b|:
//         |out - ref_fp32| <= (2 u_p + u_p^2) S + h 8 u sqrt(K) S
//                             + u_p (|ref| + 2 u_p S)     [16-bit output rounding]
//                             + u_p |residual|            [16-bit residual]
//                             + K 2^-24                    [fp16: subnormal inputs, |x| < 2^-14]
//     with S = the sum of |terms| including |scale|, |bias| and |residual| (the abs_sum of
//     test::conv_reference). This is a worst-case bound, not a statistical one.
// fp16 / bf16 with fp32 activations (conv2d_mma_f32io, the CUDA backend's 16-bit path):
// the input is rounded to 16 bits as it is gathered and the weights were converted at
// load (so (1)'s pre-rounded inputs are the same), but the output and the residual stay
// fp32: out16 = false drops the output and residual rounding terms from both bounds.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <softbio/kernels/cuda/conv2d_mma.cuh>

#include "../tolerance.hpp"

namespace test {

/// The values the tensor cores multiply for fp32 inputs x (activations or weights).
inline std::vector<float> mma_operand_values(softbio::cuda::MmaPrecision prec, const std::vector<float>& x) {
    using namespace softbio::cuda;
    std::vector<float> r(x.size());
    for (size_t i = 0; i < x.size(); ++i)
        r[i] = prec == MmaPrecision::kTf32   ? round_tf32(x[i])
               : prec == MmaPrecision::kFp16 ? f16_bits_to_f32(f32_to_f16_bits(x[i]))
                                             : bf16_bits_to_f32(f32_to_bf16_bits(x[i]));
    return r;
}

struct MmaReport {
    size_t bad = 0, first = 0;
    double worst = 0;  // max error / bound
    bool ok() const { return bad == 0; }
};

/// Comparison (1): `got` against the reference on pre-rounded inputs.
inline MmaReport compare_mma_rounded(softbio::cuda::MmaPrecision prec, const std::vector<float>& got,
                                     const std::vector<float>& ref, const std::vector<float>& abs_sum, double k,
                                     double h = 1, int out16_flag = -1) {
    using softbio::cuda::MmaPrecision;
    const double up = softbio::cuda::mma_unit_roundoff(prec);
    const bool out16 = out16_flag < 0 ? prec != MmaPrecision::kTf32 : out16_flag != 0;
    MmaReport r;
    for (size_t i = 0; i < got.size(); ++i) {
        double bound = h * tolerance(abs_sum[i], k);
        if (out16) bound += up * std::fabs(ref[i]) + (prec == MmaPrecision::kFp16 ? std::ldexp(1.0, -25) : 0.0);
        const double err = std::fabs(double(got[i]) - double(ref[i]));
        if (!(err <= bound) && !r.bad++) r.first = i;
        r.worst = std::max(r.worst, std::isnan(err) ? INFINITY : err / bound);
    }
    return r;
}

/// Comparison (2): `got` against the fp32 reference; `residual` (may be null) the fp32
/// residual that was rounded to the storage type. `out16_flag`: whether the output is
/// stored in 16 bits (-1: for fp16 / bf16; 0: fp32 activations, conv2d_mma_f32io).
inline MmaReport compare_mma_fp32(softbio::cuda::MmaPrecision prec, const std::vector<float>& got,
                                  const std::vector<float>& ref, const std::vector<float>& abs_sum, double k,
                                  const float* residual = nullptr, double h = 1, int out16_flag = -1) {
    using softbio::cuda::MmaPrecision;
    const double up = softbio::cuda::mma_unit_roundoff(prec);
    const bool out16 = out16_flag < 0 ? prec != MmaPrecision::kTf32 : out16_flag != 0;
    MmaReport r;
    for (size_t i = 0; i < got.size(); ++i) {
        const double s = abs_sum[i];
        double bound = (2 * up + up * up) * s + h * tolerance(s, k);
        if (out16) bound += up * (std::fabs(ref[i]) + 2 * up * s) + (residual ? up * std::fabs(residual[i]) : 0.0);
        if (prec == MmaPrecision::kFp16) bound += k * std::ldexp(1.0, -24);
        const double err = std::fabs(double(got[i]) - double(ref[i]));
        if (!(err <= bound) && !r.bad++) r.first = i;
        r.worst = std::max(r.worst, std::isnan(err) ? INFINITY : err / bound);
    }
    return r;
}

}  // namespace test
