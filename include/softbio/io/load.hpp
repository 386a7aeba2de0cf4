// softbio/io/load.hpp — load a network from a model file:
//
//     auto model = softbio::load_model("gender_age.safetensors");            // CPU ResNet
//     auto gpu = softbio::load_network<softbio::ResNet<softbio::CudaBackend>>(path);
//     auto r101 = softbio::load_as<softbio::ResNet101>("gender_age.safetensors");
//
// The file is opened and validated (io/model_file.hpp), then the network class builds
// its layers from its description, taking each tensor once. The returned model is
// read-only and may be shared by any number of threads.
#pragma once

#include <memory>
#include <string>

#include "softbio/backend/cpu.hpp"
#include "softbio/io/model_file.hpp"
#include "softbio/model/architectures.hpp"
#include "softbio/model/resnet.hpp"

namespace softbio {

/// Load a model file as network type `Net` (e.g. ResNet<CpuBackend>). Throws
/// ModelFileError when the file is invalid or holds another network family.
template <class Net>
std::shared_ptr<const Net> load_network(const std::string& path, const LoadOptions& opt = {}) {
    // The file object outlives the load: head weights stay in its mapping (or in its
    // copies of unaligned tensors) and are read from there at every forward pass.
    auto file = std::make_shared<const ModelFile>(open_model_file(path));
    if (file->config().family != Net::family)
        throw ModelFileError(path + ": holds a \"" + file->config().family + "\" network, expected \"" + Net::family + "\"");
    return std::make_shared<const Net>(file->config(), *file, opt, path, file);
}

/// The CPU ResNet of a model file (the common case).
inline std::shared_ptr<const ResNet<CpuBackend>> load_model(const std::string& path, const LoadOptions& opt = {}) {
    return load_network<ResNet<CpuBackend>>(path, opt);
}

/// Load a model file and check it holds the architecture `Arch` (ModelFileError if not).
template <class Arch, class Backend = CpuBackend>
std::shared_ptr<const ResNet<Backend>> load_as(const std::string& path, const LoadOptions& opt = {}) {
    auto model = load_network<ResNet<Backend>>(path, opt);
    Arch::check(model->arch(), path);
    return model;
}

}  // namespace softbio
