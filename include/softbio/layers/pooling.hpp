// softbio/layers/pooling.hpp — MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1).
// The math and PyTorch's padding rules are in kernels/cpu/pool.hpp. A window may also
// be padded per side or with TensorFlow's "same" rule (Pool2dParams::window_same,
// resolved per input size: face-api's 2x2 / 3x3 max pools, -inf padding).
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
    WindowPool2d(int kernel, int stride, int padding) : window_(Pool2dParams::window(kernel, stride, padding)) {}
    /// Any window geometry (Pool2dParams::window_same, set_padding); the input comes per call.
    explicit WindowPool2d(const Pool2dParams& window) : window_(window) {}
    Pool2dParams params_for(Shape in) const { return window_.for_input(in.n, in.h, in.w, in.c); }
    /// Throws ShapeError when the window does not fit (PyTorch raises there too).
    Shape output_shape(Shape in, const char* layer) const {
        const auto p = params_for(in);
        if (!p.window_fits()) {
            const Padding2d q = p.padding();
            throw ShapeError(std::string(layer) + "(kernel " + std::to_string(p.kernel) + ", padding " +
                             (q.is_symmetric() ? std::to_string(q.top)
                                               : std::to_string(q.top) + "/" + std::to_string(q.left) + "/" +
                                                     std::to_string(q.bottom) + "/" + std::to_string(q.right)) +
                             "): input " + in.str() + " is smaller than the window");
        }
        return {in.n, p.out_h(), p.out_w(), in.c};
    }
    int kernel() const { return window_.kernel; }
    int stride() const { return window_.stride; }
    int padding() const { return window_.pad; }  // the symmetric padding (see window() for the rest)
    const Pool2dParams& window() const { return window_; }

protected:
    Pool2dParams window_;
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
