// tests/cuda/tf32_model.hpp — the whole-network TF32, FP16 and BF16 rules (LoadOptions::precision
// on the CUDA backend: every convolution through conv2d_tf32 / conv2d_mma_f32io) and their
// host models, shared by
// the GPU test (test_cuda_model.cu) and the emulator test (test_cuda_emulated.cpp).
// Plain C++: no CUDA, no doctest.
//
// WHAT TF32 CHANGES. conv2d_tf32 rounds each activation and each weight to tf32 (cvt.rna:
// 10 explicit mantissa bits, unit roundoff u_p = 2^-11) as it reads them, multiplies
// exactly, accumulates in fp32 and applies the epilogue (scale, bias, fp32 residual,
// ReLU) in fp32. Pools, heads and the residual stream stay fp32. So each convolution
// output carries, besides the fp32 accumulation error (tests/tolerance.hpp's rule), the
// error of its rounded operands: per product a relative error of at most 2 u_p + u_p^2
// (tests/cuda/mma_tolerance.hpp, comparison (2)).
//
// WHY A RELATIVE-TO-SPREAD BOUND, AND HOW BIG. mma_tolerance.hpp's per-conv bound is a
// worst case in S = sum |terms|; over ~100 layers worst cases compound into nothing
// useful. The errors are not worst cases, though: round-to-nearest gives each operand an
// independent relative error spread evenly over [-u_p, u_p] (standard deviation
// u_p / sqrt(3)), each product sqrt(2/3) u_p ~ 4.0e-4, and a sum of K such products an
// error ~ 4.0e-4 of its own root-sum-square, i.e. ~ 4e-4 of the output's scale for the
// random-sign terms of a conv. BatchNorm keeps every layer's scale and the residual
// stream adds the blocks' independent errors, so after L convolutions the relative error
// grows like sqrt(L): ResNet-101 (104 convs) ~ 4e-3 of one value's scale, and the spread
// (max - min over the batch and classes) is a few scales. The rule:
//     max |tf32 - cpu_fp32| <= kTf32Relative * (max - min of the CPU values)
// for the pooled features and every head's logits, kTf32Relative = 5e-3 (50 times the
// fp32 rule, 1e-4: tests/test_model.cpp). Measured on the host model below
// (Tf32HostBackend: the CPU engine with both operands of every conv rounded exactly as
// the kernel rounds them; only the accumulation order differs from the GPU, an
// fp32-rule-sized effect, ~1e-4 of the spread at most even with the tensor cores'
// truncating adds, h = 4 in mma_tolerance.hpp), synthetic presets at 128 px, batch 8:
//     celeba-r18 (ResNet-18):  features 3.6e-4, gender logits 1.7e-4 of the spread
//     flagship (ResNet-101):   features 5.6e-4, gender 6.7e-4, CORAL age 1.7e-4
// so the bound leaves a factor ~7 for other inputs, weights and the GPU's order, and a
// wrong tap, layout, a missing rounding or a wrong split-K plan (a sizeable fraction of
// the spread) stays far outside. test_cuda_emulated.cpp's "whole network in TF32" case
// checks the host model against the rule in CI; test_cuda_model.cu the GPU.
//
// LABELS. Identical to the CPU's, except where the CPU's own decision is within the bound
// of flipping (its margin <= 2 x the allowed difference: the top-2 logit gap of a
// softmax / logits head, min |z_k| of a CORAL head's thresholds): such a near-tie is
// reported, not failed. Other head types: labels must be identical.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <softbio/backend/cpu.hpp>
#include <softbio/kernels/cuda/conv2d_mma.cuh>
#include <softbio/model/heads.hpp>

namespace test {

/// The allowed whole-network difference, TF32 vs the CPU's fp32, relative to the spread.
constexpr double kTf32Relative = 5e-3;

/// The CPU backend with TF32 convolutions: each conv's input and packed weights rounded
/// to tf32 exactly as conv2d_tf32 rounds them (cvt.rna: round_tf32), then the fp32 CPU
/// conv with its fp32 epilogue (so the residual, scale and bias stay fp32, as on the GPU).
struct Tf32HostBackend : softbio::CpuBackend {
    static constexpr const char* name = "cpu-tf32-model";
    static void conv2d(const softbio::Conv2dParams& p, const float* in, const float* packed_w, float* out,
                       const softbio::Epilogue& e, float* workspace, const Context& c) {
        static thread_local std::vector<float> x, w;
        x.resize(size_t(p.batch) * p.in_h * p.in_w * p.in_c);
        w.resize(size_t(p.gemm_k()) * p.out_c);
        for (size_t i = 0; i < x.size(); ++i) x[i] = softbio::cuda::round_tf32(in[i]);
        for (size_t i = 0; i < w.size(); ++i) w[i] = softbio::cuda::round_tf32(packed_w[i]);
        softbio::CpuBackend::conv2d(p, x.data(), w.data(), out, e, workspace, c);
    }
};

// FP16 / BF16 (LoadOptions::precision = Fp16 / Bf16: every convolution through
// conv2d_mma_f32io). The filters (BatchNorm folded) are stored in the 16-bit type, each
// conv's fp32 input is rounded to it as gathered, both round to nearest even; products
// exact, fp32 accumulation, fp32 epilogue, output, pools, residual stream and heads. So
// the same model as TF32 with another operand rounding: fp16 has tf32's u_p = 2^-11 (and
// fp16's range: values below 2^-14 lose relative precision, past 65504 overflow; the
// folded filters and the activations of these networks sit far inside), bf16 u_p = 2^-8,
// 8 times more, and the error grows in proportion. Measured on Mma16HostBackend (below:
// the CPU engine with both operands of every conv rounded exactly as the kernel rounds
// them; test_cuda_emulated.cpp's "whole network in FP16 / BF16 (host model)", synthetic
// presets at 128 px, batch 4), as fractions of the spread:
//                              fp16      bf16
//     celeba-r18  features     3.4e-4    3.5e-3
//                 gender       1.8e-4    3.0e-3
//     flagship    features     5.8e-4    3.8e-3
//     gender       6.7e-4    1.1e-2
//                 CORAL age    1.7e-4    7.3e-4
// fp16 is tf32's case (the same u_p, the same fractions), so kFp16Relative = kTf32Relative
// = 5e-3, a factor 7.5 over the worst. bf16 is 5-16x fp16 (8x the u_p; the most on
// flagship's gender logits, two classes with a narrow spread), so kBf16Relative = 6e-2
// keeps the same kind of margin, 5.5x over the worst, and is still far below what a wrong
// layer does (a sizeable fraction of the spread, usually more than all of it).
// Labels: as for TF32 (identical except a CPU near-tie within 2 x the allowed difference).
constexpr double kFp16Relative = 5e-3;
constexpr double kBf16Relative = 6e-2;

/// The CPU backend with FP16 / BF16 convolutions as conv2d_mma_f32io computes them: each
/// conv's input and packed weights rounded to P's 16-bit type (round to nearest even),
/// then the fp32 CPU conv with its fp32 epilogue.
template <class P>
struct Mma16HostBackend : softbio::CpuBackend {
    static constexpr const char* name = "cpu-16bit-model";
    static float round16(float v) { return P::to_float(P::from_float(v)); }
    static void conv2d(const softbio::Conv2dParams& p, const float* in, const float* packed_w, float* out,
                       const softbio::Epilogue& e, float* workspace, const Context& c) {
        static thread_local std::vector<float> x, w;
        x.resize(size_t(p.batch) * p.in_h * p.in_w * p.in_c);
        w.resize(size_t(p.gemm_k()) * p.out_c);
        for (size_t i = 0; i < x.size(); ++i) x[i] = round16(in[i]);
        for (size_t i = 0; i < w.size(); ++i) w[i] = round16(packed_w[i]);
        softbio::CpuBackend::conv2d(p, x.data(), w.data(), out, e, workspace, c);
    }
};
using Fp16HostBackend = Mma16HostBackend<softbio::cuda::MmaFp16>;
using Bf16HostBackend = Mma16HostBackend<softbio::cuda::MmaBf16>;

/// How far the CPU's decision of one head for one image is from flipping (in logit
/// units): softmax / logits: top-1 minus top-2 logit; CORAL: min |z_k|; other types:
/// +inf (the label must match).
inline double decision_margin(const softbio::HeadConfig& h, const float* z, int k) {
    using softbio::HeadType;
    if (h.type == HeadType::Softmax || h.type == HeadType::Logits) {
        double a = -INFINITY, b = -INFINITY;
        for (int i = 0; i < k; ++i) {
            const double v = z[i];
            if (v > a) b = a, a = v;
            else if (v > b) b = v;
        }
        return a - b;
    }
    if (h.type == HeadType::Coral) {
        double m = INFINITY;
        for (int i = 0; i < k; ++i) m = std::min(m, std::fabs(double(z[i])));
        return m;
    }
    return INFINITY;
}

inline double spread_of(const std::vector<float>& v) {
    if (v.empty()) return 0;
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return double(*hi) - double(*lo);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = a.size() == b.size() ? 0 : INFINITY;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
        const double d = std::fabs(double(a[i]) - double(b[i]));
        worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    }
    return worst;
}

}  // namespace test
