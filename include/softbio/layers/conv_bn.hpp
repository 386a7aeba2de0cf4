// softbio/layers/conv_bn.hpp — a Conv2d followed by its BatchNorm2d, the unit every
// ResNet is built from (the stem, each conv of a block, the downsample shortcut).
//
//     out = [ReLU]( BN(conv(in)) [+ residual] )
//
// Folded (default): BN's scale is multiplied into the filters at load and the rest
// (bias, residual, ReLU) runs in the conv's epilogue: one pass over memory.
// Unfused: conv, then BN, then the residual add, then ReLU, each a separate pass —
// literally PyTorch's graph, for study and debugging. Both give the same numbers up to
// fp32 rounding (the parity tests run both).
#pragma once

#include "softbio/layers/activation.hpp"
#include "softbio/layers/batchnorm.hpp"
#include "softbio/layers/conv2d.hpp"

namespace softbio {

template <class Backend>
class ConvBn {
public:
    ConvBn() = default;
    /// `kernel`: the CPU GEMM of the conv (ConvKernel, layers/conv2d.hpp).
    ConvBn(const Conv2dParams& geometry, const TensorRef& conv_weight, BatchNorm2d<Backend> bn,
           bool fold, ConvKernel kernel = current_conv_kernel())
        : bn_(std::move(bn)), fold_(fold),
          conv_(geometry, conv_weight, fold ? bn_.scale_host() : nullptr, FilterLayout::kPyTorch, kernel) {}

    const Conv2d<Backend>& conv() const { return conv_; }
    bool folded() const { return fold_; }
    Shape output_shape(Shape in) const { return conv_.output_shape(in); }
    size_t scratch_floats(Shape in, const typename Backend::Context& backend) const {
        return conv_.scratch_floats(in, backend);
    }
    double macs(Shape in) const { return conv_.macs(in); }

    void forward(ConstTensorView in, TensorView out, const float* residual, bool relu, const LayerContext<Backend>& ctx) const {
        Epilogue e;
        if (fold_) {
            e.bias = bn_.bias();
            e.residual = residual;
            e.relu = relu;
            conv_.forward(in, out, e, ctx);
            return;
        }
        conv_.forward(in, out, e, ctx);                     // conv alone
        bn_.forward_inplace(out, nullptr, false, ctx);      // BatchNorm
        if (residual) ResidualAdd<Backend>{}.forward_inplace(out, residual, relu, ctx);  // + shortcut, ReLU
        else if (relu) ReLU<Backend>{}.forward_inplace(out, ctx);                         // ReLU
    }

private:
    BatchNorm2d<Backend> bn_;
    bool fold_ = true;
    Conv2d<Backend> conv_;
};

}  // namespace softbio
