// softbio/layers/layer_common.hpp — what every layer's forward() receives besides its
// input and output: scratch memory planned in advance and the backend's context.
#pragma once

#include <cstddef>

namespace softbio {

/// How a layer's filter tensor is laid out in the weight file.
///   kPyTorch:    conv [Cout, Cin, kh, kw] (OIHW); depthwise [C, 1, kh, kw]
///   kTensorFlow: conv [kh, kw, Cin, Cout] (HWIO); depthwise [kh, kw, C, 1] (tfjs, face-api)
enum class FilterLayout { kPyTorch, kTensorFlow };

/// Per-call working memory and execution context, owned by a Workspace (never by a
/// layer, so one loaded model can serve many callers at once).
///   Backend::Context is what the backend's kernels need to run: on the CPU the thread
///   count (CpuContext); on CUDA the stream and the device's facts (CudaContext).
template <class Backend>
struct LayerContext {
    float* scratch = nullptr;  // at least the layer's scratch_floats(), 64-byte aligned
    size_t scratch_floats = 0;
    typename Backend::Context backend{};
};

}  // namespace softbio
