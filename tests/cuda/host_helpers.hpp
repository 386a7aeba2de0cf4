// tests/cuda/host_helpers.hpp — host-side helpers shared by the CUDA tests that run the
// kernel bodies on the emulator (test_cuda_emulated.cpp) and on the GPU
// (test_cuda_kernels.cu, kernels/cuda/dev/conv2d_check.cu). Plain C++: no CUDA, no doctest.
//
//  * shapes: the shared grids (tests/shape_grid.hpp) plus the variants the CUDA kernels
//    branch on (channel counts that allow the 16-byte paths), and the distinct
//    convolutions of a real network taken from its description (NetworkDesc), so no
//    list of layer shapes is written out by hand;
//  * the reference of a convolution with its epilogue, and the sums of |terms| that the
//    tolerance rule (tests/tolerance.hpp) needs; the documented ToTensor/Normalize
//    formula for the device-side preprocessing.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/epilogue.hpp>
#include <softbio/model/presets.hpp>
#include <softbio/model/resnet.hpp>

#include "../shape_grid.hpp"
#include "../tolerance.hpp"

namespace test {

// ---- shapes ---------------------------------------------------------------------------------

/// The same convolution with Cin rounded to a multiple of 4 (3 -> 4, 17 -> 16): the
/// shared grid uses channel counts that no vector width divides, which sends every
/// CUDA convolution down its scalar gather; this variant takes the 16-byte ones.
inline softbio::Conv2dParams with_vector_channels(softbio::Conv2dParams p) {
    if (p.in_c % 4) p.in_c = p.in_c < 4 ? 4 : p.in_c / 4 * 4;
    return p;
}

/// conv_grid() and, for each shape, its with_vector_channels() variant.
inline std::vector<softbio::Conv2dParams> cuda_conv_grid() {
    std::vector<softbio::Conv2dParams> out;
    for (const softbio::Conv2dParams& p : conv_grid()) {
        out.push_back(p);
        out.push_back(with_vector_channels(p));
    }
    return out;
}

/// pool_grid() (19 channels: the scalar path) and each shape with 20 channels (float4).
inline std::vector<softbio::Pool2dParams> cuda_pool_grid() {
    std::vector<softbio::Pool2dParams> out;
    for (softbio::Pool2dParams p : pool_grid()) {
        out.push_back(p);
        p.channels = 20;
        out.push_back(p);
    }
    return out;
}

inline std::string describe_pool(const softbio::Pool2dParams& p) {
    return "pool k" + std::to_string(p.kernel) + " s" + std::to_string(p.stride) + " p" + std::to_string(p.pad) + " N" +
           std::to_string(p.batch) + " " + std::to_string(p.in_h) + "x" + std::to_string(p.in_w) + "x" +
           std::to_string(p.channels);
}

struct ConvUse {
    softbio::Conv2dParams p;
    int count = 0;      // how many of the network's convolutions have this shape
    std::string where;  // the first unit with it, e.g. "layer3.0.conv2"
};

inline bool same_conv(const softbio::Conv2dParams& a, const softbio::Conv2dParams& b) {
    return a.batch == b.batch && a.in_h == b.in_h && a.in_w == b.in_w && a.in_c == b.in_c && a.out_c == b.out_c &&
           a.kernel_h == b.kernel_h && a.kernel_w == b.kernel_w && a.stride == b.stride && a.pad == b.pad;
}

/// The distinct convolutions of `desc` on `batch` images of size x size, in network order.
inline std::vector<ConvUse> distinct_convs(const softbio::NetworkDesc& desc, int in_channels, int batch, int size) {
    const softbio::Shape input{batch, size, size, in_channels};
    const std::vector<softbio::Shape> shapes = desc.shapes(input);
    std::vector<ConvUse> out;
    for (const softbio::UnitDesc& u : desc.units) {
        if (u.kind != softbio::UnitKind::ConvBn) continue;
        const softbio::Shape in = u.input == softbio::kNetworkInput ? input : shapes[size_t(u.input)];
        const softbio::Conv2dParams p = softbio::NetworkDesc::conv_params(u, in);
        auto it = out.begin();
        while (it != out.end() && !same_conv(it->p, p)) ++it;
        if (it == out.end()) out.push_back({p, 1, u.name});
        else ++it->count;
    }
    return out;
}

/// The same for a preset (softbio/model/presets.hpp), e.g. "torchvision-r101".
inline std::vector<ConvUse> distinct_convs(const std::string& preset, int batch, int size) {
    const softbio::ModelConfig cfg = softbio::preset_config(preset);
    return distinct_convs(softbio::describe_resnet(cfg), cfg.arch.in_channels, batch, size);
}

// ---- references -------------------------------------------------------------------------------

/// ref = epilogue(conv(in, w)) by the direct references (cpu::conv2d_reference, then
/// cpu::apply_epilogue_reference with the host pointers of `e`), and abs_sum = the
/// same sum over the absolute values of every term, for the tolerance rule with
/// K = p.gemm_k(). `w` is PyTorch's [Cout, Cin, kh, kw].
inline void conv_reference(const softbio::Conv2dParams& p, const std::vector<float>& in, const std::vector<float>& w,
                           const softbio::Epilogue& e, std::vector<float>& ref, std::vector<float>& abs_sum) {
    const size_t out_n = p.gemm_m() * p.out_c;
    ref.assign(out_n, 0.0f);
    abs_sum.assign(out_n, 0.0f);
    softbio::cpu::conv2d_reference(p, in.data(), w.data(), ref.data());
    softbio::cpu::conv2d_reference(p, abs_of(in).data(), abs_of(w).data(), abs_sum.data());
    softbio::cpu::apply_epilogue_reference(e, ref.data(), p.gemm_m(), p.out_c);
    for (size_t i = 0; i < out_n; ++i) {
        const int c = int(i % size_t(p.out_c));
        abs_sum[i] = abs_sum[i] * (e.scale ? std::fabs(e.scale[c]) : 1.0f) + (e.bias ? std::fabs(e.bias[c]) : 0.0f) +
                     (e.residual ? std::fabs(e.residual[i]) : 0.0f);
    }
}

/// ToTensor (+ Normalize when mean and std are given) by its documented formula
/// (softbio/image/preprocess.hpp): x = float(v) / 255, then (x - mean[c]) / std[c], each
/// one fp32 operation rounded to nearest. `batch` HWC 8-bit images with the given byte
/// strides -> [batch, h, w, 3] floats.
inline std::vector<float> to_tensor_reference(const std::uint8_t* src, int batch, int h, int w, size_t row_stride,
                                              size_t image_stride, const float* mean, const float* std) {
    std::vector<float> out(size_t(batch) * h * w * 3);
    for (int n = 0; n < batch; ++n)
        for (int y = 0; y < h; ++y)
            for (int j = 0; j < w * 3; ++j) {
                float x = float(src[size_t(n) * image_stride + size_t(y) * row_stride + size_t(j)]) / 255.0f;
                if (mean && std) x = (x - mean[j % 3]) / std[j % 3];
                out[(size_t(n) * h + y) * w * 3 + size_t(j)] = x;
            }
    return out;
}

}  // namespace test
