// kernels/cpu/linear.hpp — fully connected layer, and PyTorch's NCHW flatten order.
//
//   y[n, o] = sum_f W[o, f] * x[n, f] + b[o]        (PyTorch's nn.Linear, W is [O, F])
//
// W is used exactly as stored in the weight file (row-major [O, F]), so each output is
// one dot product of two contiguous F-vectors; threads split the outputs. The heads of
// softbio's models have O <= 1000 and F <= 8192: this is memory-bound, not worth a GEMM.
//
// flatten_nchw_order(): a pooled map [N, H, W, C] (NHWC) becomes the feature vector
// PyTorch's `x.view(N, -1)` produces from NCHW, i.e. feature index c*H*W + h*W + w.
// For Raschka's 2x2 pooled maps that is 4c + 2h + w; for 1x1 maps it is just c.
#pragma once

#include <cstddef>

#include "../op_params.hpp"

namespace softbio::cpu {

inline void linear(int batch, int in_features, int out_features, const float* x, const float* w, const float* b,
                   float* y, int threads) {
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < batch; ++n)
        for (int o = 0; o < out_features; ++o) {
            const float* xr = x + size_t(n) * in_features;
            const float* wr = w + size_t(o) * in_features;
            // 8 independent partial sums: lets the compiler keep several FMA chains in flight.
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int f = 0;
            for (; f + 8 <= in_features; f += 8)
                for (int j = 0; j < 8; ++j) acc[j] += xr[f + j] * wr[f + j];
            float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            for (; f < in_features; ++f) sum += xr[f] * wr[f];
            y[size_t(n) * out_features + o] = sum + (b ? b[o] : 0.0f);
        }
}

inline void linear_reference(int batch, int in_features, int out_features, const float* x, const float* w,
                             const float* b, float* y) {
    for (int n = 0; n < batch; ++n)
        for (int o = 0; o < out_features; ++o) {
            double sum = b ? b[o] : 0.0;
            for (int f = 0; f < in_features; ++f) sum += double(w[size_t(o) * in_features + f]) * x[size_t(n) * in_features + f];
            y[size_t(n) * out_features + o] = float(sum);
        }
}

/// CORAL's thresholds (model/heads.hpp): z[n, k] = g[n] + bias[k] for k < k1, where
/// g = x.w is the one shared score and bias the K-1 ordered biases.
inline void coral_logits(int batch, int k1, const float* g, const float* bias, float* z) {
    for (int n = 0; n < batch; ++n)
        for (int k = 0; k < k1; ++k) z[size_t(n) * k1 + k] = g[n] + bias[k];
}

/// [N, H, W, C] (NHWC) -> [N, C*H*W] in PyTorch's NCHW flatten order.
inline void flatten_nchw_order(int batch, int h, int w, int c, const float* in, float* out) {
    for (int n = 0; n < batch; ++n)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                for (int ch = 0; ch < c; ++ch)
                    out[size_t(n) * c * h * w + (size_t(ch) * h + y) * w + x] =
                        in[((size_t(n) * h + y) * w + x) * c + ch];
}

}  // namespace softbio::cpu
