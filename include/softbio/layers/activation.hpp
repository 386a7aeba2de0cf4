// softbio/layers/activation.hpp — ReLU, y = max(x, 0), in place.
//
// In the optimised graph ReLU never runs alone: it is fused into the epilogue of the
// conv (or BatchNorm) before it. This stand-alone layer is the unfused path.
#pragma once

#include "softbio/core/tensor.hpp"
#include "softbio/layers/layer_common.hpp"

namespace softbio {

template <class Backend>
struct ReLU {
    void forward_inplace(TensorView x, const LayerContext<Backend>& ctx) const {
        Epilogue e;
        e.relu = true;
        Backend::epilogue(e, x.data, x.shape.pixels(), x.shape.c, ctx.backend);
    }
};

/// y = x + residual, then optionally ReLU, in place (the end of an unfused residual block).
template <class Backend>
struct ResidualAdd {
    void forward_inplace(TensorView x, const float* residual, bool relu, const LayerContext<Backend>& ctx) const {
        Epilogue e;
        e.residual = residual;
        e.relu = relu;
        Backend::epilogue(e, x.data, x.shape.pixels(), x.shape.c, ctx.backend);
    }
};

}  // namespace softbio
