// softbio/layers/pooling.hpp — MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1).
// The math and PyTorch's padding rules are in kernels/cpu/pool.hpp.
#pragma once

#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/layers/layer_common.hpp"

namespace softbio {

/// Shared shape logic of the windowed pools.
template <class Backend>
class WindowPool2d {
public:
    WindowPool2d() = default;
    WindowPool2d(int kernel, int stride, int padding) : kernel_(kernel), stride_(stride), padding_(padding) {}
    Pool2dParams params_for(Shape in) const {
        Pool2dParams p;
        p.batch = in.n;
        p.in_h = in.h;
        p.in_w = in.w;
        p.channels = in.c;
        p.kernel = kernel_;
        p.stride = stride_;
        p.pad = padding_;
        return p;
    }
    /// Throws ShapeError when the window does not fit (PyTorch raises there too).
    Shape output_shape(Shape in, const char* layer) const {
        const auto p = params_for(in);
        if (in.h + 2 * padding_ < kernel_ || in.w + 2 * padding_ < kernel_)
            throw ShapeError(std::string(layer) + "(kernel " + std::to_string(kernel_) + ", padding " +
                             std::to_string(padding_) + "): input " + in.str() + " is smaller than the window");
        return {in.n, p.out_h(), p.out_w(), in.c};
    }
    int kernel() const { return kernel_; }
    int stride() const { return stride_; }
    int padding() const { return padding_; }

protected:
    int kernel_ = 1, stride_ = 1, padding_ = 0;
};

template <class Backend>
class MaxPool2d : public WindowPool2d<Backend> {
public:
    using WindowPool2d<Backend>::WindowPool2d;
    Shape output_shape(Shape in) const { return WindowPool2d<Backend>::output_shape(in, "MaxPool2d"); }
    void forward(ConstTensorView in, TensorView out, const LayerContext<Backend>& ctx) const {
        Backend::maxpool2d(this->params_for(in.shape), in.data, out.data, ctx.backend);
    }
};

/// AvgPool2d with ceil_mode=False, count_include_pad=True (PyTorch's defaults).
template <class Backend>
class AvgPool2d : public WindowPool2d<Backend> {
public:
    using WindowPool2d<Backend>::WindowPool2d;
    Shape output_shape(Shape in) const { return WindowPool2d<Backend>::output_shape(in, "AvgPool2d"); }
    void forward(ConstTensorView in, TensorView out, const LayerContext<Backend>& ctx) const {
        Backend::avgpool2d(this->params_for(in.shape), in.data, out.data, ctx.backend);
    }
};

/// AdaptiveAvgPool2d((1,1)): one mean per channel.
template <class Backend>
struct AdaptiveAvgPool2d {
    Shape output_shape(Shape in) const { return {in.n, 1, 1, in.c}; }
    void forward(ConstTensorView in, TensorView out, const LayerContext<Backend>& ctx) const {
        Backend::global_avgpool(in.shape.n, in.shape.h, in.shape.w, in.shape.c, in.data, out.data, ctx.backend);
    }
};

}  // namespace softbio
