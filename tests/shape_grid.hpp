// tests/shape_grid.hpp — the one grid of op shapes every backend's kernels are tested
// over (CPU tests, CUDA emulator tests, GPU tests, kernels/cuda/dev drivers): odd sizes,
// strides, padding, batch 1 and N, channel counts that are no multiple of any vector
// width (3, 17, 33), plus the shapes that exercise tiling (many row tiles, column
// splits, deep K) and the ResNet stem and downsample.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <softbio/kernels/op_params.hpp>

namespace test {

inline softbio::Conv2dParams conv_shape(int batch, int h, int w, int cin, int cout, int k, int stride, int pad) {
    softbio::Conv2dParams p;
    p.batch = batch, p.in_h = h, p.in_w = w, p.in_c = cin, p.out_c = cout;
    p.kernel_h = p.kernel_w = k, p.stride = stride, p.pad = pad;
    return p;
}

inline std::string describe(const softbio::Conv2dParams& p) {
    return "conv k" + std::to_string(p.kernel_h) + " s" + std::to_string(p.stride) + " p" + std::to_string(p.pad) +
           " N" + std::to_string(p.batch) + " " + std::to_string(p.in_h) + "x" + std::to_string(p.in_w) + "x" +
           std::to_string(p.in_c) + "->" + std::to_string(p.out_c);
}

/// Kernel 1/3/7 x stride 1/2 x padding 0..k/2+1 x batch 1/3 x sizes 7x7, 9x5, 11x13.
inline std::vector<softbio::Conv2dParams> conv_grid() {
    std::vector<softbio::Conv2dParams> out;
    for (int k : {1, 3, 7})
        for (int stride : {1, 2})
            for (int pad = 0; pad <= k / 2 + 1; ++pad)
                for (int batch : {1, 3})
                    for (auto hw : {std::pair<int, int>{7, 7}, {9, 5}, {11, 13}}) {
                        const int cin = k == 7 ? 3 : 17;      // the stem's 3; 17: no vector width
                        const int cout = batch == 1 ? 20 : 33;
                        if (hw.first + 2 * pad < k || hw.second + 2 * pad < k) continue;
                        out.push_back(conv_shape(batch, hw.first, hw.second, cin, cout, k, stride, pad));
                    }
    return out;
}

/// Shapes that stress how a kernel cuts the work: many row tiles with a partial last
/// one, deep K, few pixels with wide Cout (column splits), pointwise stride 1 and 2.
inline std::vector<softbio::Conv2dParams> conv_tiling_shapes() {
    return {conv_shape(3, 19, 23, 19, 37, 3, 1, 1),    // M = 1311: several row tiles
            conv_shape(2, 14, 15, 256, 64, 3, 1, 1),   // K = 2304
            conv_shape(1, 7, 7, 40, 300, 3, 1, 1),     // late-stage batch 1: column tiles
            conv_shape(2, 15, 11, 64, 129, 1, 1, 0),   // pointwise, input is the patch matrix
            conv_shape(2, 15, 11, 64, 129, 1, 2, 0)};  // strided pointwise (downsample)
}

inline softbio::Pool2dParams pool_shape(int batch, int h, int w, int c, int k, int stride, int pad) {
    softbio::Pool2dParams p;
    p.batch = batch, p.in_h = h, p.in_w = w, p.channels = c, p.kernel = k, p.stride = stride, p.pad = pad;
    return p;
}

/// Kernel 1/2/3/4/7 x stride 1..4 x padding 0..k/2 x batch 1/3 x sizes 4x4, 7x9, 8x5,
/// 19 channels (the ResNets' 3/2/1 max pool, Raschka's 7/1/2 and coral-cnn's 4/4/0
/// average pools are in it).
inline std::vector<softbio::Pool2dParams> pool_grid() {
    std::vector<softbio::Pool2dParams> out;
    for (int k : {1, 2, 3, 4, 7})
        for (int s : {1, 2, 3, 4})
            for (int pad = 0; pad <= k / 2; ++pad)
                for (int batch : {1, 3})
                    for (auto hw : {std::pair<int, int>{4, 4}, {7, 9}, {8, 5}}) {
                        if (hw.first + 2 * pad < k || hw.second + 2 * pad < k) continue;
                        out.push_back(pool_shape(batch, hw.first, hw.second, 19, k, s, pad));
                    }
    return out;
}

/// Every combination of the epilogue's optional steps (scale, residual, ReLU; the bias
/// always on), with the given operands.
inline std::vector<softbio::Epilogue> epilogue_variants(const float* scale, const float* bias, const float* residual) {
    std::vector<softbio::Epilogue> out;
    for (bool with_scale : {false, true})
        for (bool with_residual : {false, true})
            for (bool relu : {false, true}) {
                softbio::Epilogue e;
                e.scale = with_scale ? scale : nullptr;
                e.bias = bias;
                e.residual = with_residual ? residual : nullptr;
                e.relu = relu;
                out.push_back(e);
            }
    return out;
}

}  // namespace test
