// tests/reference_resnet.hpp — a slow, obviously-correct ResNet forward pass for the
// model tests, written straight from the definitions with the *_reference kernels and
// the textbook BatchNorm formula, reading tensors from the model file by name. It
// shares no layer code with the engine, so agreement means the engine's assembly
// (folding, strides, downsample placement, pooling, flatten order, heads) is right.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <softbio/io/model_file.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/linear.hpp>
#include <softbio/kernels/cpu/pool.hpp>

namespace test {

struct RefMap {
    int n, h, w, c;
    std::vector<float> v;  // NHWC
};

struct RefOutputs {
    std::map<std::string, RefMap> stages;               // "stem", "layer1".."layer4"
    std::vector<float> features;                        // [N, F]
    std::map<std::string, std::vector<float>> logits;   // head name -> [N, logits]
};

inline RefMap ref_conv(const softbio::ModelFile& f, const std::string& name, const RefMap& x, int stride, int pad) {
    const auto& w = f.tensor(name + ".weight");
    softbio::Conv2dParams p;
    p.batch = x.n, p.in_h = x.h, p.in_w = x.w, p.in_c = x.c, p.out_c = int(w.shape[0]);
    p.kernel_h = int(w.shape[2]), p.kernel_w = int(w.shape[3]), p.stride = stride, p.pad = pad;
    RefMap y{x.n, p.out_h(), p.out_w(), p.out_c, {}};
    y.v.resize(size_t(y.n) * y.h * y.w * y.c);
    softbio::cpu::conv2d_reference(p, x.v.data(), w.data, y.v.data());
    return y;
}

// y = (x - mean) / sqrt(var + eps) * gamma + beta, then optional ReLU.
inline void ref_bn(const softbio::ModelFile& f, const std::string& name, RefMap& x, float eps, bool relu) {
    const float* g = f.tensor(name + ".weight").data;
    const float* b = f.tensor(name + ".bias").data;
    const float* m = f.tensor(name + ".running_mean").data;
    const float* var = f.tensor(name + ".running_var").data;
    for (size_t i = 0; i < x.v.size(); ++i) {
        const int c = int(i % size_t(x.c));
        double y = (double(x.v[i]) - m[c]) / std::sqrt(double(var[c]) + eps) * g[c] + b[c];
        if (relu && y < 0) y = 0;
        x.v[i] = float(y);
    }
}

inline RefOutputs reference_forward(const softbio::ModelFile& f, const std::vector<float>& input_nhwc, int n, int h, int w) {
    const auto& cfg = f.config();
    const auto& a = cfg.arch;
    RefOutputs out;
    RefMap x{n, h, w, a.in_channels, input_nhwc};
    x = ref_conv(f, "conv1", x, 2, 3);
    ref_bn(f, "bn1", x, a.bn_eps, true);
    softbio::Pool2dParams mp;
    mp.batch = x.n, mp.in_h = x.h, mp.in_w = x.w, mp.channels = x.c, mp.kernel = 3, mp.stride = 2, mp.pad = 1;
    RefMap pooled{x.n, mp.out_h(), mp.out_w(), x.c, {}};
    pooled.v.resize(size_t(pooled.n) * pooled.h * pooled.w * pooled.c);
    softbio::cpu::maxpool2d_reference(mp, x.v.data(), pooled.v.data());
    x = pooled;
    out.stages["stem"] = x;
    for (int s = 0; s < 4; ++s) {
        for (int b = 0; b < a.layers[s]; ++b) {
            const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b);
            const int stride = (s > 0 && b == 0) ? 2 : 1;
            RefMap y;
            if (a.block == softbio::BlockType::Basic) {
                y = ref_conv(f, p + ".conv1", x, stride, 1);
                ref_bn(f, p + ".bn1", y, a.bn_eps, true);
                y = ref_conv(f, p + ".conv2", y, 1, 1);
                ref_bn(f, p + ".bn2", y, a.bn_eps, false);
            } else {
                const bool v1 = a.stride_in == softbio::StrideIn::Conv1;
                y = ref_conv(f, p + ".conv1", x, v1 ? stride : 1, 0);
                ref_bn(f, p + ".bn1", y, a.bn_eps, true);
                y = ref_conv(f, p + ".conv2", y, v1 ? 1 : stride, 1);
                ref_bn(f, p + ".bn2", y, a.bn_eps, true);
                y = ref_conv(f, p + ".conv3", y, 1, 0);
                ref_bn(f, p + ".bn3", y, a.bn_eps, false);
            }
            RefMap shortcut = x;
            if (f.config().arch.layers[s] > 0 && b == 0 && (stride != 1 || x.c != y.c)) {
                shortcut = ref_conv(f, p + ".downsample.0", x, stride, 0);
                ref_bn(f, p + ".downsample.1", shortcut, a.bn_eps, false);
            }
            for (size_t i = 0; i < y.v.size(); ++i) y.v[i] = std::max(0.0f, y.v[i] + shortcut.v[i]);
            x = y;
        }
        out.stages["layer" + std::to_string(s + 1)] = x;
    }
    // Pool, then flatten in NCHW order.
    int ph = 1, pw = 1;
    std::vector<float> pooled_map;
    if (a.pool.type == softbio::PoolConfig::Type::AdaptiveAvg) {
        pooled_map.resize(size_t(x.n) * x.c);
        softbio::cpu::global_avgpool_reference(x.n, x.h, x.w, x.c, x.v.data(), pooled_map.data());
    } else {
        softbio::Pool2dParams ap;
        ap.batch = x.n, ap.in_h = x.h, ap.in_w = x.w, ap.channels = x.c;
        ap.kernel = a.pool.kernel, ap.stride = a.pool.stride, ap.pad = a.pool.padding;
        ph = ap.out_h(), pw = ap.out_w();
        pooled_map.resize(size_t(x.n) * ph * pw * x.c);
        softbio::cpu::avgpool2d_reference(ap, x.v.data(), pooled_map.data());
    }
    const int feat = x.c * ph * pw;
    out.features.resize(size_t(x.n) * feat);
    for (int i = 0; i < x.n; ++i)
        for (int yy = 0; yy < ph; ++yy)
            for (int xx = 0; xx < pw; ++xx)
                for (int c = 0; c < x.c; ++c)
                    out.features[size_t(i) * feat + size_t(c) * ph * pw + yy * pw + xx] =
                        pooled_map[((size_t(i) * ph + yy) * pw + xx) * x.c + c];
    for (const auto& h : cfg.heads) {
        const auto& w = f.tensor("head." + h.name + ".weight");
        const auto& b = f.tensor("head." + h.name + ".bias");
        const int rows = int(w.shape[0]);
        std::vector<float> z(size_t(x.n) * rows);
        softbio::cpu::linear_reference(x.n, feat, rows, out.features.data(), w.data,
                                       h.type == softbio::HeadType::Coral ? nullptr : b.data, z.data());
        if (h.type == softbio::HeadType::Coral) {  // z_k = w.x + b_k
            std::vector<float> zk;
            for (int i = 0; i < x.n; ++i)
                for (int k = 0; k < h.num_classes - 1; ++k) zk.push_back(z[size_t(i)] + b.data[k]);
            z = zk;
        }
        out.logits[h.name] = z;
    }
    return out;
}

}  // namespace test
