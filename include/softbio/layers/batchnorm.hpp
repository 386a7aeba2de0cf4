// softbio/layers/batchnorm.hpp — BatchNorm2d in inference form.
//
// At inference a BatchNorm uses its stored statistics, so it is a fixed per-channel
// affine map:
//     y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta
//       = x * scale + bias,   scale = gamma / sqrt(running_var + eps),
//                             bias  = beta - running_mean * scale
// (gamma/beta are PyTorch's `weight`/`bias`; eps defaults to 1e-5.)
//
// Two ways to run it:
//  * folded (the default): the conv before it multiplies its filters by `scale` at
//    load, and only `bias` remains, applied in the conv's epilogue — zero extra cost;
//  * unfused: forward() applies scale and bias as its own pass over the activations,
//    exactly the PyTorch graph, for study and for debugging a mismatch.
#pragma once

#include <cmath>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/layers/layer_common.hpp"

namespace softbio {

template <class Backend>
class BatchNorm2d {
public:
    BatchNorm2d() = default;
    /// gamma, beta, mean, var: [C] each (already validated by the loader).
    BatchNorm2d(const TensorRef& gamma, const TensorRef& beta, const TensorRef& mean, const TensorRef& var, float eps)
        : channels_(int(gamma.numel())), scale_host_(channels_), bias_host_(channels_) {
        for (int c = 0; c < channels_; ++c) {
            // Computed in double: the folded constants then round once, to fp32.
            const double s = double(gamma.data[c]) / std::sqrt(double(var.data[c]) + double(eps));
            scale_host_[c] = float(s);
            bias_host_[c] = float(double(beta.data[c]) - double(mean.data[c]) * s);
            if (!std::isfinite(scale_host_[c]) || !std::isfinite(bias_host_[c]))
                throw Error("BatchNorm channel " + std::to_string(c) + ": scale gamma / sqrt(running_var + eps) = " +
                            number_string(s) + " or its bias is not a finite fp32 number");
        }
        scale_ = Backend::upload(scale_host_.data(), channels_);
        bias_ = Backend::upload(bias_host_.data(), channels_);
    }

    int channels() const { return channels_; }
    /// Per-channel factors on the host (what folding multiplies into the conv).
    const float* scale_host() const { return scale_host_.data(); }
    const float* scale() const { return scale_.data(); }
    const float* bias() const { return bias_.data(); }

    /// Unfused path: x = x * scale + bias (+ residual) (then ReLU), in place.
    void forward_inplace(TensorView x, const float* residual, bool relu, const LayerContext<Backend>& ctx) const {
        Epilogue e;
        e.scale = scale();
        e.bias = bias();
        e.residual = residual;
        e.relu = relu;
        Backend::epilogue(e, x.data, x.shape.pixels(), x.shape.c, ctx.backend);
    }

private:
    int channels_ = 0;
    std::vector<float> scale_host_, bias_host_;
    typename Backend::Buffer scale_, bias_;
};

}  // namespace softbio
