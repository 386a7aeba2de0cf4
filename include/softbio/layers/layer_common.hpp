// softbio/layers/layer_common.hpp — what every layer's forward() receives besides its
// input and output: scratch memory planned in advance and the thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace softbio {

/// Per-call working memory and parallelism, owned by a Workspace (never by a layer,
/// so one loaded model can serve many threads at once).
struct LayerContext {
    float* scratch = nullptr;    // at least the layer's scratch_floats(), 64-byte aligned
    size_t scratch_floats = 0;
    int threads = 1;
};

/// A read-only fp32 tensor from a weight file, in PyTorch's layout.
struct TensorRef {
    const float* data = nullptr;
    std::vector<int64_t> shape;
    size_t numel() const {
        size_t n = 1;
        for (int64_t d : shape) n *= size_t(d);
        return n;
    }
};

}  // namespace softbio
