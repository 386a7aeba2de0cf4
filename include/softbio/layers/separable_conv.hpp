// softbio/layers/separable_conv.hpp — SeparableConv2d: a depthwise KxK convolution,
// then a pointwise 1x1 convolution, then a bias (tf.separableConv2d; face-api's "sep"
// and the tiny face detector's conv1..conv5):
//
//     mid[n, y, x, ci]  = sum_{ky, kx} in[n, y*s - pt + ky, x*s - pl + kx, ci] * Wd[ci, ky, kx]
//     out[n, y, x, co]  = tail( sum_ci mid[n, y, x, ci] * Wp[co, ci] + bias[co] )
//
// No activation and no bias between the two convolutions. The stride and the padding
// (symmetric, per side or TensorFlow "same") are the depthwise step's; the pointwise step
// is 1x1, stride 1, unpadded. `tail` is the rest of an epilogue the caller chooses: a
// residual, and ReLU or leaky ReLU (the bias is the layer's own).
//
// Memory: `mid` lives in the caller's scratch (scratch_floats()), followed by the
// pointwise convolution's working memory; the pointwise step is a plain GEMM on the
// depthwise output (NHWC = [pixels, Cin]), with bias and activation fused into it.
#pragma once

#include <string>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/layers/conv2d.hpp"
#include "softbio/layers/depthwise_conv.hpp"
#include "softbio/layers/layer_common.hpp"

namespace softbio {

template <class Backend>
class SeparableConv2d {
public:
    SeparableConv2d() = default;
    /// `depthwise_geometry`: Conv2dParams::depthwise / depthwise_same (channels = Cin,
    /// kernel, stride, padding). `depthwise_weight`: [Cin, 1, k, k] (PyTorch) or
    /// [k, k, Cin, 1] (TensorFlow). `pointwise_weight`: [Cout, Cin, 1, 1] or [1, 1, Cin, Cout].
    /// `bias`: [Cout] host floats, or an empty TensorRef (no bias).
    SeparableConv2d(const Conv2dParams& depthwise_geometry, const TensorRef& depthwise_weight,
                    const TensorRef& pointwise_weight, const TensorRef& bias, FilterLayout layout = FilterLayout::kPyTorch)
        : depthwise_(depthwise_geometry, depthwise_weight, nullptr, layout) {
        const int cin = depthwise_geometry.in_c;
        if (cin < 1 || pointwise_weight.numel() % size_t(cin) != 0)
            throw ShapeError("SeparableConv2d: the pointwise filter (" + std::to_string(pointwise_weight.numel()) +
                             " values) is not Cout x " + std::to_string(cin));
        const int cout = int(pointwise_weight.numel() / size_t(cin));
        pointwise_ = Conv2d<Backend>(Conv2dParams::geometry(cin, cout, 1, 1, 0), pointwise_weight, nullptr, layout);
        if (bias.data) {
            if (bias.numel() != size_t(cout))
                throw ShapeError("SeparableConv2d: bias has " + std::to_string(bias.numel()) + " values, expected " +
                                 std::to_string(cout));
            bias_ = Backend::upload(bias.data, size_t(cout));
            has_bias_ = true;
        }
    }

    const DepthwiseConv2d<Backend>& depthwise() const { return depthwise_; }
    const Conv2d<Backend>& pointwise() const { return pointwise_; }
    const float* bias() const { return has_bias_ ? bias_.data() : nullptr; }
    int in_channels() const { return depthwise_.channels(); }
    int out_channels() const { return pointwise_.geometry().out_c; }

    Shape mid_shape(Shape in) const { return depthwise_.output_shape(in); }
    Shape output_shape(Shape in) const { return pointwise_.output_shape(mid_shape(in)); }
    /// The depthwise output (64-byte aligned) plus the pointwise convolution's workspace.
    size_t scratch_floats(Shape in, const typename Backend::Context& backend) const {
        const Shape mid = mid_shape(in);
        return align_floats(mid.numel()) + pointwise_.scratch_floats(mid, backend);
    }
    double macs(Shape in) const { return depthwise_.macs(in) + pointwise_.macs(mid_shape(in)); }

    /// out = tail(pointwise(depthwise(in)) + bias). `tail`: residual and activation
    /// (relu / leaky_alpha); its scale is applied too; its bias must be null (the layer's
    /// own is used). `out` must not alias `in`.
    void forward(ConstTensorView in, TensorView out, const Epilogue& tail, const LayerContext<Backend>& ctx) const {
        if (tail.bias) throw Error("SeparableConv2d: the epilogue's bias must be null (the layer has its own)");
        const Shape mid = mid_shape(in.shape);
        const size_t need = scratch_floats(in.shape, ctx.backend);
        if (ctx.scratch_floats < need)
            throw Error("SeparableConv2d: scratch of " + std::to_string(ctx.scratch_floats) + " floats, needs " +
                        std::to_string(need));
        float* mid_data = ctx.scratch;
        depthwise_.forward(in, TensorView{mid_data, mid}, Epilogue{}, ctx);
        LayerContext<Backend> rest = ctx;
        rest.scratch = ctx.scratch + align_floats(mid.numel());
        rest.scratch_floats = ctx.scratch_floats - align_floats(mid.numel());
        Epilogue e = tail;
        e.bias = bias();
        pointwise_.forward(ConstTensorView{mid_data, mid}, out, e, rest);
    }

private:
    DepthwiseConv2d<Backend> depthwise_;
    Conv2d<Backend> pointwise_;
    typename Backend::Buffer bias_;
    bool has_bias_ = false;
};

}  // namespace softbio
