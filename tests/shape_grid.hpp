// tests/shape_grid.hpp — the one grid of op shapes every backend's kernels are tested
// over (CPU tests, CUDA emulator tests, GPU tests, kernels/cuda/dev drivers): odd sizes,
// strides, padding, batch 1 and N, channel counts that are no multiple of any vector
// width (3, 17, 33), plus the shapes that exercise tiling (many row tiles, column
// splits, deep K) and the ResNet stem and downsample; depthwise convolutions; and
// asymmetric / TensorFlow "same" padding (the face-api networks).
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

inline std::string describe_padding(const softbio::Padding2d& q) {
    if (q.is_symmetric()) return std::to_string(q.top);
    return std::to_string(q.top) + "/" + std::to_string(q.left) + "/" + std::to_string(q.bottom) + "/" +
           std::to_string(q.right);
}

inline std::string describe(const softbio::Conv2dParams& p) {
    return "conv k" + std::to_string(p.kernel_h) + " s" + std::to_string(p.stride) + " p" + describe_padding(p.padding()) +
           (p.same ? " same" : "") + " N" + std::to_string(p.batch) + " " + std::to_string(p.in_h) + "x" +
           std::to_string(p.in_w) + "x" + std::to_string(p.in_c) + "->" + std::to_string(p.out_c);
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

/// Convolutions with asymmetric padding: TF "same" with the odd pixel at the bottom/right
/// (3x3 stride 2 on even sizes, 2x2, 1x1 stride 2), explicit per-side pads (including a
/// larger top/left), for the scalar (Cin 5) and vector (Cin 8) paths, batch 1 and 2.
inline std::vector<softbio::Conv2dParams> conv_asym_shapes() {
    std::vector<softbio::Conv2dParams> out;
    for (int batch : {1, 2})
        for (int cin : {5, 8}) {
            const int cout = batch == 1 ? 12 : 19;
            softbio::Conv2dParams p = conv_shape(batch, 12, 10, cin, cout, 3, 2, 0);
            p.same = true;  // out 6x5, pads 0 top / 1 bottom, 0 left / 1 right
            out.push_back(p);
            p = conv_shape(batch, 9, 7, cin, cout, 3, 2, 0);
            p.same = true;  // odd sizes: symmetric 1/1
            out.push_back(p);
            p = conv_shape(batch, 13, 11, cin, cout, 2, 1, 0);
            p.same = true;  // 2x2 stride 1: 0 / 1
            out.push_back(p);
            p = conv_shape(batch, 12, 10, cin, cout, 1, 2, 0);
            p.same = true;  // 1x1 stride 2: no padding
            out.push_back(p);
            out.push_back(conv_shape(batch, 8, 9, cin, cout, 3, 1, 0).set_padding(0, 1, 2, 0));
            out.push_back(conv_shape(batch, 7, 8, cin, cout, 3, 2, 0).set_padding(2, 0, 1, 2));
            out.push_back(conv_shape(batch, 6, 6, cin, cout, 1, 1, 0).set_padding(1, 0, 0, 1));  // a padded 1x1
        }
    return out;
}

/// A depthwise convolution of `c` channels (out_c = in_c).
inline softbio::Conv2dParams depthwise_shape(int batch, int h, int w, int c, int k, int stride, int pad) {
    return conv_shape(batch, h, w, c, c, k, stride, pad);
}

/// Depthwise convolutions: kernel 1/3/5 x stride 1/2 x symmetric padding 0..k/2 and TF
/// "same" x batch 1/3 x odd sizes x channels 1, 3, 17, 32, 33 (no vector width / a
/// vector width), plus explicit asymmetric pads and the face-api layers' shapes.
inline std::vector<softbio::Conv2dParams> depthwise_grid() {
    std::vector<softbio::Conv2dParams> out;
    const int channels[] = {1, 3, 17, 32, 33};
    int i = 0;
    for (int k : {1, 3, 5})
        for (int stride : {1, 2})
            for (int pad = -1; pad <= k / 2; ++pad)  // -1: TF "same"
                for (int batch : {1, 3})
                    for (auto hw : {std::pair<int, int>{7, 7}, {9, 5}, {12, 11}}) {
                        const int c = channels[(i++) % 5];
                        softbio::Conv2dParams p = depthwise_shape(batch, hw.first, hw.second, c, k, stride, pad < 0 ? 0 : pad);
                        p.same = pad < 0;
                        if (!p.window_fits()) continue;
                        out.push_back(p);
                    }
    for (int c : {3, 16, 17}) {
        out.push_back(depthwise_shape(2, 10, 9, c, 3, 1, 0).set_padding(0, 1, 1, 0));
        out.push_back(depthwise_shape(1, 8, 11, c, 3, 2, 0).set_padding(2, 0, 0, 2));
        out.push_back(depthwise_shape(1, 6, 5, c, 3, 3, 0).set_padding(1, 1, 2, 2));
        out.push_back(depthwise_shape(2, 4, 4, c, 3, 2, 0).set_padding(0, 4, 4, 0));  // last windows: all padding
    }
    out.push_back(depthwise_shape(1, 26, 26, 128, 3, 1, 1));  // detector conv4 (explicit pad 1)
    out.push_back(depthwise_shape(2, 28, 28, 64, 3, 1, 1));   // age/gender sep, "same" stride 1
    return out;
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

/// Max/avg pools with asymmetric padding: TF "same" (2x2 stride 2 on odd sizes, 2x2
/// stride 1, 3x3 stride 2 on even sizes: the odd pixel at the bottom/right, face-api's
/// pools) and explicit per-side pads, 19 (scalar) channels; the CUDA grid adds 20.
inline std::vector<softbio::Pool2dParams> pool_asym_shapes() {
    std::vector<softbio::Pool2dParams> out;
    for (int batch : {1, 2}) {
        for (auto hw : {std::pair<int, int>{7, 9}, {13, 13}, {8, 6}, {1, 3}}) {
            for (auto ks : {std::pair<int, int>{2, 2}, {2, 1}, {3, 2}, {3, 1}, {1, 2}}) {
                softbio::Pool2dParams p = pool_shape(batch, hw.first, hw.second, 19, ks.first, ks.second, 0);
                p.same = true;
                out.push_back(p);
            }
        }
        out.push_back(pool_shape(batch, 7, 6, 19, 3, 2, 0).set_padding(0, 1, 1, 0));
        out.push_back(pool_shape(batch, 5, 8, 19, 3, 1, 0).set_padding(1, 0, 2, 2));
        out.push_back(pool_shape(batch, 6, 6, 19, 4, 3, 0).set_padding(2, 1, 0, 3));
    }
    return out;
}

/// Every combination of the epilogue's optional steps (scale, residual, and the
/// activation: none, ReLU or leaky ReLU with face-api's 0.1; the bias always on), with
/// the given operands.
inline std::vector<softbio::Epilogue> epilogue_variants(const float* scale, const float* bias, const float* residual) {
    std::vector<softbio::Epilogue> out;
    for (bool with_scale : {false, true})
        for (bool with_residual : {false, true})
            for (int activation : {0, 1, 2}) {
                softbio::Epilogue e;
                e.scale = with_scale ? scale : nullptr;
                e.bias = bias;
                e.residual = with_residual ? residual : nullptr;
                e.relu = activation == 1;
                e.leaky_alpha = activation == 2 ? 0.1f : 0.0f;
                out.push_back(e);
            }
    return out;
}

}  // namespace test
