// softbio/layers/conv2d.hpp — Conv2d (no bias, groups 1): the layer around the
// kernel in kernels/cpu/conv2d.hpp.
//
// At construction the PyTorch weights [Cout, Cin, kh, kw] are repacked once into the
// GEMM operand [kh*kw*Cin, Cout] the kernel wants, optionally with a following
// BatchNorm's scale multiplied in (folding). forward() then runs one fused call:
//     out = epilogue(conv(in))
// where the epilogue carries bias / residual / ReLU (see kernels/cpu/epilogue.hpp).
#pragma once

#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/layers/layer_common.hpp"

namespace softbio {

template <class Backend>
class Conv2d {
public:
    struct Options {
        int in_channels = 0, out_channels = 0;
        int kernel = 1, stride = 1, padding = 0;
    };

    Conv2d() = default;
    /// `weight`: PyTorch layout [Cout, Cin, k, k]. `fold_scale`: null, or [Cout] factors
    /// to multiply into each output channel's filter (a folded BatchNorm).
    Conv2d(const Options& o, const TensorRef& weight, const float* fold_scale) : opt_(o) {
        Conv2dParams p = params_for({1, o.kernel, o.kernel, o.in_channels});
        std::vector<float> packed(size_t(p.gemm_k()) * o.out_channels);
        pack_conv_weights(p, weight.data, fold_scale, packed.data());  // kernels/op_params.hpp
        packed_ = Backend::upload(packed.data(), packed.size());
    }

    const Options& options() const { return opt_; }

    /// Kernel parameters for an input of this shape.
    Conv2dParams params_for(Shape in) const {
        Conv2dParams p;
        p.batch = in.n;
        p.in_h = in.h;
        p.in_w = in.w;
        p.in_c = opt_.in_channels;
        p.out_c = opt_.out_channels;
        p.kernel_h = p.kernel_w = opt_.kernel;
        p.stride = opt_.stride;
        p.pad = opt_.padding;
        return p;
    }
    Shape output_shape(Shape in) const {
        const auto p = params_for(in);
        return {in.n, p.out_h(), p.out_w(), opt_.out_channels};
    }
    size_t scratch_floats(Shape in, const typename Backend::Context& backend) const {
        return Backend::conv2d_workspace_floats(params_for(in), backend);
    }
    double macs(Shape in) const { return params_for(in).macs(); }

    void forward(ConstTensorView in, TensorView out, const Epilogue& epilogue,
                 const LayerContext<Backend>& ctx) const {
        if (in.shape.c != opt_.in_channels)
            throw ShapeError("Conv2d: expected " + std::to_string(opt_.in_channels) + " input channels, got " +
                             in.shape.str());
        Backend::conv2d(params_for(in.shape), in.data, packed_.data(), out.data, epilogue, ctx.scratch, ctx.backend);
    }

private:
    Options opt_;
    typename Backend::Buffer packed_;
};

}  // namespace softbio
