// softbio/layers/linear.hpp — Flatten (PyTorch NCHW order) and Linear.
//
// Flatten: `x.view(N, -1)` on an NCHW map orders features as c*H*W + h*W + w. softbio
// keeps maps in NHWC, so Flatten reorders (kernels/cpu/linear.hpp); for a 1x1 map the
// two orders coincide and it is a plain copy.
// Linear: y = x W^T + b with W as stored by PyTorch, [out, in]; the weights may live
// directly in the memory-mapped weight file (zero-copy) or in an owned buffer.
#pragma once

#include "softbio/core/tensor.hpp"
#include "softbio/layers/layer_common.hpp"

namespace softbio {

template <class Backend>
struct Flatten {
    /// [N, H, W, C] -> [N, 1, 1, C*H*W]
    Shape output_shape(Shape in) const { return {in.n, 1, 1, in.h * in.w * in.c}; }
    void forward(ConstTensorView in, TensorView out, const LayerContext<Backend>& ctx) const {
        Backend::flatten_nchw_order(in.shape.n, in.shape.h, in.shape.w, in.shape.c, in.data, out.data, ctx.backend);
    }
};

template <class Backend>
class Linear {
public:
    Linear() = default;
    /// weight [out, in], bias [out] or null; both must outlive the layer.
    Linear(int in_features, int out_features, const float* weight, const float* bias)
        : in_(in_features), out_(out_features), weight_(weight), bias_(bias) {}
    int in_features() const { return in_; }
    int out_features() const { return out_; }
    double macs(int batch) const { return double(batch) * in_ * out_; }
    /// x: [N, in] -> y: [N, out]
    void forward(const float* x, int batch, float* y, const LayerContext<Backend>& ctx) const {
        Backend::linear(batch, in_, out_, x, weight_, bias_, y, ctx.backend);
    }

private:
    int in_ = 0, out_ = 0;
    const float* weight_ = nullptr;
    const float* bias_ = nullptr;
};

}  // namespace softbio
