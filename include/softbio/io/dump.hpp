// softbio/io/dump.hpp — write an NHWC activation as a .npy in PyTorch's NCHW order,
// so a layer's output compares directly with a PyTorch forward hook.
#pragma once

#include <string>
#include <vector>

#include "softbio/core/tensor.hpp"
#include "softbio/io/npy.hpp"
#include "softbio/model/network.hpp"

namespace softbio {

/// [N,H,W,C] -> .npy [N,C,H,W]; with `squeeze_1x1`, maps of 1x1 pixels (features,
/// logits) are written [N,C].
inline void write_npy_nchw(const std::string& path, ConstTensorView v, bool squeeze_1x1 = true) {
    const Shape& s = v.shape;
    std::vector<float> nchw(s.numel());
    for (int n = 0; n < s.n; ++n)
        for (int y = 0; y < s.h; ++y)
            for (int x = 0; x < s.w; ++x)
                for (int c = 0; c < s.c; ++c)
                    nchw[((size_t(n) * s.c + c) * s.h + y) * s.w + x] = v.data[((size_t(n) * s.h + y) * s.w + x) * s.c + c];
    if (squeeze_1x1 && s.h == 1 && s.w == 1) npy::write_f32(path, nchw.data(), {s.n, s.c});
    else npy::write_f32(path, nchw.data(), {s.n, s.c, s.h, s.w});
}

/// A layer's output as an observer sees it, on any backend (copied to the host first).
inline void write_npy_nchw(const std::string& path, const LayerEvent& e, bool squeeze_1x1 = true) {
    std::vector<float> host(e.output.shape.numel());
    e.copy_output(host.data());
    write_npy_nchw(path, ConstTensorView{host.data(), e.output.shape}, squeeze_1x1);
}

}  // namespace softbio
