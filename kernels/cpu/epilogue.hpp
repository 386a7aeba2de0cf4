// kernels/cpu/epilogue.hpp — the per-channel tail of a convolution, fused.
//
// After the GEMM of a convolution, each output element y[m, c] (m = pixel, c = output
// channel) goes through
//
//     y = y * scale[c] + bias[c]        inference BatchNorm, folded to an affine map:
//                                         scale = gamma / sqrt(running_var + eps)
//                                         bias  = beta - running_mean * scale
//     y = y + residual[m, c]            the shortcut of a residual block (optional)
//     y = relu(y)                       ReLU (optional; NaN stays NaN, op_params.hpp)
//       or leaky_relu(y, alpha)         leaky ReLU when leaky_alpha != 0 (y < 0 ? alpha*y : y;
//                                         face-api's alpha = 0.1f; NaN stays NaN)
//
// (the Epilogue struct itself is shared by all backends: kernels/op_params.hpp)
// in that order, which is exactly BN -> (+ identity) -> ReLU of a ResNet block. When
// BN has been folded into the conv weights at load, `scale` is null (= 1) and only
// the bias remains. Doing this on a tile right after its GEMM, while it is still in
// cache, saves a full pass over the activations per op.
#pragma once

#include <algorithm>
#include <cstddef>

#include "../op_params.hpp"

namespace softbio::cpu {

/// Apply `e` to a block of `rows` x `cols` outputs: out[r*ld + j] is channel
/// channel0 + j of pixel row0 + r. (`out` and the residual share the leading dim ld.)
inline void apply_epilogue(const Epilogue& e, float* out, size_t row0, int rows, int channel0, int cols, int ld) {
    if (e.empty()) return;
    const float* scale = e.scale ? e.scale + channel0 : nullptr;
    const float* bias = e.bias ? e.bias + channel0 : nullptr;
    for (int r = 0; r < rows; ++r) {
        float* y = out + size_t(r) * ld;
        const float* res = e.residual ? e.residual + (row0 + r) * size_t(ld) + channel0 : nullptr;
        if (scale) for (int j = 0; j < cols; ++j) y[j] *= scale[j];
        if (bias) for (int j = 0; j < cols; ++j) y[j] += bias[j];
        if (res) for (int j = 0; j < cols; ++j) y[j] += res[j];
        if (e.leaky_alpha != 0.0f) {
            const float alpha = e.leaky_alpha;
            for (int j = 0; j < cols; ++j) y[j] = leaky_relu(y[j], alpha);
        } else if (e.relu) {
            for (int j = 0; j < cols; ++j) y[j] = relu(y[j]);
        }
    }
}

/// Apply `e` to a whole [M, C] tensor with `threads` OpenMP threads (used by the
/// unfused BatchNorm / ReLU layers).
inline void apply_epilogue_rows(const Epilogue& e, float* out, size_t m, int c, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long long r0 = 0; r0 < (long long)m; r0 += 64) {
        int rows = int(std::min<size_t>(64, m - size_t(r0)));
        apply_epilogue(e, out + size_t(r0) * c, size_t(r0), rows, 0, c, c);
    }
}

/// Reference: the same math, one element at a time, no blocking, no threads.
inline void apply_epilogue_reference(const Epilogue& e, float* out, size_t m, int c) {
    for (size_t i = 0; i < m; ++i)
        for (int j = 0; j < c; ++j) {
            float y = out[i * c + j];
            if (e.scale) y = y * e.scale[j];
            if (e.bias) y = y + e.bias[j];
            if (e.residual) y = y + e.residual[i * c + j];
            y = activate(e, y);
            out[i * c + j] = y;
        }
}

}  // namespace softbio::cpu
