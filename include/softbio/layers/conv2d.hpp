// softbio/layers/conv2d.hpp — Conv2d (no bias, groups 1): the layer around the
// kernel in kernels/cpu/conv2d.hpp.
//
// At construction the PyTorch weights [Cout, Cin, kh, kw] are repacked once into the
// GEMM operand [kh*kw*Cin, Cout] the kernel wants, optionally with a following
// BatchNorm's scale multiplied in (folding). forward() then runs one fused call:
//     out = epilogue(conv(in))
// where the epilogue carries bias / residual / ReLU or leaky ReLU (kernels/cpu/epilogue.hpp).
// Padding: whatever the geometry says (Conv2dParams: PyTorch's symmetric `pad`, per
// side, or TensorFlow "same", resolved for each input size).
#pragma once

#include <cmath>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/layers/layer_common.hpp"

namespace softbio {

template <class Backend>
class Conv2d {
public:
    Conv2d() = default;
    /// `geometry`: channels, kernel, stride, padding (Conv2dParams::geometry /
    /// geometry_same; the input size is given per call). `weight`: PyTorch layout
    /// [Cout, Cin, k, k], or TensorFlow's [k, k, Cin, Cout] with FilterLayout::kTensorFlow.
    /// `fold_scale`: null, or [Cout] factors to multiply into each output channel's filter
    /// (a folded BatchNorm).
    Conv2d(const Conv2dParams& geometry, const TensorRef& weight, const float* fold_scale,
           FilterLayout layout = FilterLayout::kPyTorch)
        : geometry_(geometry) {
        std::vector<float> packed(size_t(geometry_.gemm_k()) * geometry_.out_c);
        if (weight.numel() != packed.size())
            throw ShapeError("Conv2d: the filter has " + std::to_string(weight.numel()) + " values, the geometry needs " +
                             std::to_string(packed.size()));
        if (layout == FilterLayout::kTensorFlow)
            pack_conv_weights_hwio(geometry_, weight.data, fold_scale, packed.data());
        else
            pack_conv_weights(geometry_, weight.data, fold_scale, packed.data());  // kernels/op_params.hpp
        for (size_t i = 0; i < packed.size(); ++i)
            if (!std::isfinite(packed[i]))
                throw Error("the filters times the folded BatchNorm scale overflow fp32 (packed element " +
                            std::to_string(i) + ")");
        packed_ = Backend::upload(packed.data(), packed.size());
    }

    const Conv2dParams& geometry() const { return geometry_; }
    /// Kernel parameters for an input of this shape.
    Conv2dParams params_for(Shape in) const { return geometry_.for_input(in.n, in.h, in.w); }
    Shape output_shape(Shape in) const {
        const auto p = params_for(in);
        return {in.n, p.out_h(), p.out_w(), geometry_.out_c};
    }
    size_t scratch_floats(Shape in, const typename Backend::Context& backend) const {
        return Backend::conv2d_workspace_floats(params_for(in), backend);
    }
    double macs(Shape in) const { return params_for(in).macs(); }

    void forward(ConstTensorView in, TensorView out, const Epilogue& epilogue,
                 const LayerContext<Backend>& ctx) const {
        if (in.shape.c != geometry_.in_c)
            throw ShapeError("Conv2d: expected " + std::to_string(geometry_.in_c) + " input channels, got " +
                             in.shape.str());
        if (!params_for(in.shape).window_fits())
            throw ShapeError("Conv2d: input " + in.shape.str() + " is smaller than the " +
                             std::to_string(geometry_.kernel_h) + "x" + std::to_string(geometry_.kernel_w) + " window");
        Backend::conv2d(params_for(in.shape), in.data, packed_.data(), out.data, epilogue, ctx.scratch, ctx.backend);
    }

private:
    Conv2dParams geometry_;
    typename Backend::Buffer packed_;
};

}  // namespace softbio
