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
//
// Which GEMM (CPU backend only; ConvKernel below): by default softbio's packed GEMM
// (kernels/cpu/gemm_packed.hpp), whose weight panels are built here, once, and are what
// the layer stores; ConvKernel::Eigen stores the plain [K, Cout] operand and runs Eigen's
// GEBP (kernels/cpu/gemm.hpp), the baseline. The backend call is the same: the CPU kernel
// reads which layout it was given from the buffer (kernels/cpu/conv2d.hpp).
// ConvKernel::Winograd stores, for 3x3 stride-1 convs only, the F(4x4, 3x3) transformed
// filters (kernels/cpu/winograd.hpp: 4x the weights, about 10x the rounding error of the
// direct sum, fewer multiplications) and runs them through Backend::conv2d_winograd; its
// other convs are Packed. ConvKernel::Auto makes the choice per conv, from measurements:
// Winograd where cpu::winograd_preferred says it wins (3x3 stride 1, 64 to 256
// channels), Packed elsewhere; kernel() then says which one it took. The default stays
// Packed (LoadOptions::conv_kernel): Auto is opt-in. Other backends always get the plain
// operand.
// Precision bf16 (a FilterStorageScope(Bf16) around the construction, which ResNet's
// build opens for LoadOptions::precision = Bf16): the CPU backend stores bf16 panels
// (kernels/cpu/gemm_bf16.hpp) and runs every conv on them, whatever ConvKernel says.
#pragma once

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/finite.hpp"
#include "softbio/core/precision.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/kernels/cpu/gemm_bf16.hpp"
#include "softbio/kernels/cpu/gemm_packed.hpp"
#include "softbio/kernels/cpu/winograd.hpp"
#include "softbio/layers/layer_common.hpp"

namespace softbio {

struct CpuBackend;  // backend/cpu.hpp

/// The GEMM behind a convolution on the CPU backend: softbio's packed GEMM (weights in
/// the micro-kernel's panels, im2col in the packing, the default) or Eigen's GEBP on the
/// plain operand (the baseline, for comparison), or Winograd's F(4x4, 3x3) for the 3x3
/// stride-1 convs and Packed for the others, or Auto: per conv, Winograd where it was
/// measured to win (cpu::winograd_preferred), Packed elsewhere (opt-in: see the file
/// comment). LoadOptions::conv_kernel picks it for a model; no effect on other backends.
enum class ConvKernel { Packed, Eigen, Winograd, Auto };

/// "packed", "eigen", "winograd" or "auto".
inline const char* conv_kernel_name(ConvKernel k) {
    return k == ConvKernel::Eigen ? "eigen" : k == ConvKernel::Winograd ? "winograd" : k == ConvKernel::Auto ? "auto" : "packed";
}

/// The kernel called `name`; Error naming the choices otherwise.
inline ConvKernel parse_conv_kernel(const std::string& name) {
    if (name == "packed") return ConvKernel::Packed;
    if (name == "eigen") return ConvKernel::Eigen;
    if (name == "winograd") return ConvKernel::Winograd;
    if (name == "auto") return ConvKernel::Auto;
    throw Error("unknown conv kernel \"" + name + "\": expected packed, eigen, winograd or auto");
}

namespace detail {
inline ConvKernel& conv_kernel_in_scope() {
    thread_local ConvKernel k = ConvKernel::Packed;
    return k;
}
}  // namespace detail

/// The kernel a Conv2d built now on this thread uses when not told (Packed, unless a
/// ConvKernelScope says otherwise).
inline ConvKernel current_conv_kernel() { return detail::conv_kernel_in_scope(); }

/// While alive, Conv2d layers built on this thread default to `k` (load_network opens one
/// with LoadOptions::conv_kernel around the network's build, so that every conv of the
/// model, whatever unit builds it, gets the model's choice).
class ConvKernelScope {
public:
    explicit ConvKernelScope(ConvKernel k) : saved_(current_conv_kernel()) { detail::conv_kernel_in_scope() = k; }
    ~ConvKernelScope() { detail::conv_kernel_in_scope() = saved_; }
    ConvKernelScope(const ConvKernelScope&) = delete;
    ConvKernelScope& operator=(const ConvKernelScope&) = delete;

private:
    ConvKernel saved_;
};

template <class Backend>
class Conv2d {
public:
    Conv2d() = default;
    /// `geometry`: channels, kernel, stride, padding (Conv2dParams::geometry /
    /// geometry_same; the input size is given per call). `weight`: PyTorch layout
    /// [Cout, Cin, k, k], or TensorFlow's [k, k, Cin, Cout] with FilterLayout::kTensorFlow.
    /// `fold_scale`: null, or [Cout] factors to multiply into each output channel's filter
    /// (a folded BatchNorm). `kernel`: the CPU GEMM (see ConvKernel).
    Conv2d(const Conv2dParams& geometry, const TensorRef& weight, const float* fold_scale,
           FilterLayout layout = FilterLayout::kPyTorch, ConvKernel kernel = current_conv_kernel())
        : geometry_(geometry), kernel_(kernel) {
        const size_t k_times_n = size_t(geometry_.gemm_k()) * geometry_.out_c;
        if (weight.numel() != k_times_n)
            throw ShapeError("Conv2d: the filter has " + std::to_string(weight.numel()) + " values, the geometry needs " +
                             std::to_string(k_times_n));
        if constexpr (std::is_same<Backend, CpuBackend>::value) {
            if (kernel_ == ConvKernel::Auto)  // the measured per-shape choice (kernels/cpu/winograd.hpp)
                kernel_ = cpu::winograd_preferred(geometry_) ? ConvKernel::Winograd : ConvKernel::Packed;
            if (kernel_ == ConvKernel::Winograd && !cpu::winograd_applies(geometry_))
                kernel_ = ConvKernel::Packed;  // not a 3x3 stride-1 conv
            if (kernel_ == ConvKernel::Packed && layout == FilterLayout::kPyTorch &&
                filter_storage_precision() != Precision::Bf16) {
                // The default, and most of a model's load: the file's filters straight into
                // the micro-kernel's panels (kernels/cpu/gemm_packed.hpp); no plain copy in
                // between, and no zeroing of what is written anyway.
                packed_ = AlignedBuffer::uninitialized(cpu::packed_conv_weights_floats(geometry_));
                cpu::pack_conv_weights_panels_oihw(geometry_, weight.data, fold_scale, packed_.data());
                const float* panels = packed_.data() + cpu::kPackedHeaderFloats;  // the header's tag is a NaN
                const size_t count = packed_.size() - cpu::kPackedHeaderFloats;
                if (first_non_finite(panels, count) != count) {  // name the element as the plain path does
                    check_finite(plain_filters(weight, fold_scale, layout));
                    throw Error("the filters times the folded BatchNorm scale overflow fp32");  // never reached: same products
                }
                return;
            }
        }
        const std::vector<float> packed = plain_filters(weight, fold_scale, layout);
        check_finite(packed);
        if constexpr (std::is_same<Backend, CpuBackend>::value) {
            if (filter_storage_precision() == Precision::Bf16) {  // bf16 panels (gemm_bf16.hpp), once, whatever kernel_ says
                kernel_ = ConvKernel::Packed, precision_ = Precision::Bf16;
                packed_ = typename Backend::Buffer(cpu::packed_bf16_weights_floats(geometry_));
                cpu::pack_conv_weights_bf16(geometry_, packed.data(), packed_.data());
                return;
            }
            if (kernel_ == ConvKernel::Winograd) {  // transformed filters, once
                packed_ = typename Backend::Buffer(cpu::winograd_weight_floats(geometry_));
                cpu::pack_winograd_weights_plain(geometry_, packed.data(), packed_.data());
                return;
            }
            if (kernel_ == ConvKernel::Packed) {  // the micro-kernel's panels, from TensorFlow's layout
                packed_ = AlignedBuffer::uninitialized(cpu::packed_conv_weights_floats(geometry_));
                cpu::pack_conv_weights_panels(geometry_, packed.data(), packed_.data());
                return;
            }
        } else {
            kernel_ = ConvKernel::Eigen;  // other backends read the plain operand (Auto too)
        }
        packed_ = Backend::upload(packed.data(), packed.size());
    }

    const Conv2dParams& geometry() const { return geometry_; }
    /// The layout the weights were stored in: Packed (panels), Eigen (plain [K, Cout]) or
    /// Winograd (transformed filters; 3x3 stride-1 convs only); never Auto (resolved at
    /// construction).
    ConvKernel kernel() const { return kernel_; }
    /// The arithmetic of the stored filters on the CPU backend: Fp32, or Bf16 (bf16
    /// panels: built inside a FilterStorageScope(Bf16), as ResNet's load with
    /// LoadOptions::precision = Bf16 does). Other backends: Fp32 (they keep their own).
    Precision precision() const { return precision_; }
    /// Kernel parameters for an input of this shape.
    Conv2dParams params_for(Shape in) const { return geometry_.for_input(in.n, in.h, in.w); }
    Shape output_shape(Shape in) const {
        const auto p = params_for(in);
        return {in.n, p.out_h(), p.out_w(), geometry_.out_c};
    }
    size_t scratch_floats(Shape in, const typename Backend::Context& backend) const {
        if constexpr (std::is_same<Backend, CpuBackend>::value)
            if (kernel_ == ConvKernel::Winograd) return Backend::conv2d_winograd_workspace_floats(params_for(in), backend);
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
        if constexpr (std::is_same<Backend, CpuBackend>::value)
            if (kernel_ == ConvKernel::Winograd) {
                Backend::conv2d_winograd(params_for(in.shape), in.data, packed_.data(), out.data, epilogue, ctx.scratch,
                                         ctx.backend);
                return;
            }
        Backend::conv2d(params_for(in.shape), in.data, packed_.data(), out.data, epilogue, ctx.scratch, ctx.backend);
    }

private:
    /// The plain GEMM operand W[K x Cout] (kernels/op_params.hpp), BatchNorm's scale folded.
    std::vector<float> plain_filters(const TensorRef& weight, const float* fold_scale, FilterLayout layout) const {
        std::vector<float> plain(weight.numel());
        if (layout == FilterLayout::kTensorFlow)
            pack_conv_weights_hwio(geometry_, weight.data, fold_scale, plain.data());
        else
            pack_conv_weights(geometry_, weight.data, fold_scale, plain.data());
        return plain;
    }
    /// Finite filters (a huge BatchNorm scale times a filter can overflow fp32).
    static void check_finite(const std::vector<float>& plain) {
        const size_t bad = first_non_finite(plain.data(), plain.size());
        if (bad != plain.size())
            throw Error("the filters times the folded BatchNorm scale overflow fp32 (packed element " +
                        std::to_string(bad) + ")");
    }

    Conv2dParams geometry_;
    ConvKernel kernel_ = ConvKernel::Packed;
    Precision precision_ = Precision::Fp32;
    typename Backend::Buffer packed_;
};

}  // namespace softbio
