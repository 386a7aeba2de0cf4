// softbio.hpp — everything needed to load a ResNet weight file and run it on the CPU.
//
//     #include <softbio/softbio.hpp>
//     auto model = softbio::load_model("model.safetensors");     // shared, read-only
//     auto ws = model->make_workspace(/*max_batch=*/8);           // per-thread memory
//     model->forward(input_nhwc, batch, *ws);                     // no allocation
//     std::vector<std::vector<softbio::HeadOutput>> out;
//     model->decode(*ws, batch, out);
//
// This header does not include image decoding: softbio/image/*.hpp (stb) and the
// one-call API in softbio/predictor.hpp are separate, so an embedder who brings its own
// tensors never compiles them. (It still pulls in Eigen and nlohmann-json: expect a few
// seconds of compile time per translation unit that includes it.)
#pragma once

#include "softbio/backend/cpu.hpp"
#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/core/threading.hpp"
#include "softbio/io/load.hpp"
#include "softbio/model/architectures.hpp"
#include "softbio/model/resnet.hpp"

namespace softbio {
/// The CPU model type.
using Model = ResNet<CpuBackend>;
using CpuWorkspace = Workspace<CpuBackend>;
}  // namespace softbio
