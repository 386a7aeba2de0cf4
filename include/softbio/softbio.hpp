// softbio.hpp — everything needed to load a ResNet weight file and run it on the CPU.
//
//     #include <softbio/softbio.hpp>
//     auto model = softbio::Model::load("model.safetensors");   // shared, read-only
//     auto ws = model->make_workspace(/*max_batch=*/8);           // per-thread memory
//     model->forward(input_nhwc, batch, *ws);                     // no allocation
//     std::vector<std::vector<softbio::HeadOutput>> out;
//     model->decode(*ws, batch, out);
//
// Image decoding and preprocessing live in softbio/image/*.hpp and the one-call API in
// softbio/predictor.hpp; they are separate so this header stays cheap to compile.
#pragma once

#include "softbio/backend/cpu.hpp"
#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/core/threading.hpp"
#include "softbio/io/model_file.hpp"
#include "softbio/io/safetensors.hpp"
#include "softbio/model/architectures.hpp"
#include "softbio/model/resnet.hpp"

namespace softbio {
/// The CPU model type.
using Model = ResNet<CpuBackend>;
using CpuWorkspace = Workspace<CpuBackend>;
}  // namespace softbio
