// softbio/layers/depthwise_conv.hpp — DepthwiseConv2d: one KxK filter per channel
// (PyTorch Conv2d with groups = C; tf.nn.depthwiseConv2d), the layer around
// kernels/cpu/depthwise.hpp.
//
//     out[n, oy, ox, c] = epilogue( sum_{ky, kx} in[n, oy*s - pt + ky, ox*s - pl + kx, c] * W[c, ky, kx] )
//
// with zero padding pt/pl/pb/pr from the geometry (Conv2dParams::depthwise: PyTorch's
// symmetric padding; depthwise_same: TensorFlow "same"; or set_padding per side). At
// construction the filters are repacked once into the kernel's [kh*kw, C] layout,
// optionally with a following BatchNorm's scale folded in. forward() runs one fused call;
// the epilogue (bias, residual, ReLU or leaky ReLU) comes from the caller, as for Conv2d.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/layers/layer_common.hpp"

namespace softbio {

/// The backend seam of a depthwise convolution: Backend::depthwise_conv2d(p, in,
/// packed_w, out, epilogue, context), like every other op (backend/cpu.hpp). A backend
/// whose struct lives elsewhere may specialise this instead: backend/cuda_depthwise.hpp
/// does so for CudaBackend.
template <class Backend>
struct DepthwiseSeam {
    static void run(const Conv2dParams& p, const float* in, const float* packed_w, float* out, const Epilogue& e,
                    const typename Backend::Context& c) {
        Backend::depthwise_conv2d(p, in, packed_w, out, e, c);
    }
};

template <class Backend>
class DepthwiseConv2d {
public:
    DepthwiseConv2d() = default;
    /// `geometry`: channels (in_c == out_c), kernel, stride, padding; the input size is
    /// given per call. `weight`: PyTorch [C, 1, kh, kw], or TensorFlow's [kh, kw, C, 1]
    /// with FilterLayout::kTensorFlow. `fold_scale`: null, or [C] factors multiplied into
    /// each channel's filter.
    DepthwiseConv2d(const Conv2dParams& geometry, const TensorRef& weight, const float* fold_scale,
                    FilterLayout layout = FilterLayout::kPyTorch)
        : geometry_(geometry) {
        if (geometry_.out_c != geometry_.in_c || geometry_.in_c < 1)
            throw ShapeError("DepthwiseConv2d: channels in (" + std::to_string(geometry_.in_c) + ") and out (" +
                             std::to_string(geometry_.out_c) + ") must be equal and positive");
        std::vector<float> packed(size_t(geometry_.kernel_h) * geometry_.kernel_w * geometry_.in_c);
        if (weight.numel() != packed.size())
            throw ShapeError("DepthwiseConv2d: the filter has " + std::to_string(weight.numel()) +
                             " values, the geometry needs " + std::to_string(packed.size()));
        if (layout == FilterLayout::kTensorFlow)
            pack_depthwise_weights_hwc(geometry_, weight.data, fold_scale, packed.data());
        else
            pack_depthwise_weights(geometry_, weight.data, fold_scale, packed.data());  // kernels/op_params.hpp
        for (size_t i = 0; i < packed.size(); ++i)
            if (!std::isfinite(packed[i]))
                throw Error("DepthwiseConv2d: filter element " + std::to_string(i) + " (packed) is not a finite fp32 number");
        packed_ = Backend::upload(packed.data(), packed.size());
    }

    const Conv2dParams& geometry() const { return geometry_; }
    int channels() const { return geometry_.in_c; }
    Conv2dParams params_for(Shape in) const { return geometry_.for_input(in.n, in.h, in.w); }
    Shape output_shape(Shape in) const {
        const auto p = params_for(in);
        if (!p.window_fits())
            throw ShapeError("DepthwiseConv2d: input " + in.str() + " is smaller than the " +
                             std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + " window");
        return {in.n, p.out_h(), p.out_w(), geometry_.in_c};
    }
    size_t scratch_floats(Shape, const typename Backend::Context&) const { return 0; }
    double macs(Shape in) const { return params_for(in).depthwise_macs(); }
    const float* packed_weights() const { return packed_.data(); }

    /// out = epilogue(depthwise(in)). `out` must not alias `in` (nor epilogue.residual).
    void forward(ConstTensorView in, TensorView out, const Epilogue& epilogue, const LayerContext<Backend>& ctx) const {
        if (in.shape.c != geometry_.in_c)
            throw ShapeError("DepthwiseConv2d: expected " + std::to_string(geometry_.in_c) + " channels, got " +
                             in.shape.str());
        output_shape(in.shape);  // throws when the window does not fit
        DepthwiseSeam<Backend>::run(params_for(in.shape), in.data, packed_.data(), out.data, epilogue, ctx.backend);
    }

private:
    Conv2dParams geometry_;
    typename Backend::Buffer packed_;
};

}  // namespace softbio
