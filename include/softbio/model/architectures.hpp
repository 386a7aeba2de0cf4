// softbio/model/architectures.hpp — compile-time names for the common ResNets.
//
// A ResNet's structure is data (block type + four block counts), held in ArchConfig at
// run time, so any published variant loads from its file's metadata. These aliases
// add compile-time checking for code that expects a particular network:
//
//     auto model = softbio::load_as<softbio::ResNet101>("gender_age.safetensors");
//
// refuses a file holding any other architecture. They are tag types, not nested
// layer types: instantiating ResNet-152 costs no more compile time than ResNet-18.
#pragma once

#include <memory>
#include <string>

#include "softbio/backend/cpu.hpp"
#include "softbio/model/resnet.hpp"

namespace softbio {

template <BlockType Block, int L1, int L2, int L3, int L4>
struct ResNetArch {
    static_assert(L1 > 0 && L2 > 0 && L3 > 0 && L4 > 0, "every stage needs at least one block");
    static constexpr BlockType block = Block;
    static constexpr int layers[4] = {L1, L2, L3, L4};
    static constexpr int depth = (L1 + L2 + L3 + L4) * (Block == BlockType::Bottleneck ? 3 : 2) + 2;
    static bool matches(const ArchConfig& a) {
        return a.block == Block && a.layers[0] == L1 && a.layers[1] == L2 && a.layers[2] == L3 && a.layers[3] == L4;
    }
};

using ResNet18 = ResNetArch<BlockType::Basic, 2, 2, 2, 2>;
using ResNet34 = ResNetArch<BlockType::Basic, 3, 4, 6, 3>;
using ResNet50 = ResNetArch<BlockType::Bottleneck, 3, 4, 6, 3>;
using ResNet101 = ResNetArch<BlockType::Bottleneck, 3, 4, 23, 3>;
using ResNet152 = ResNetArch<BlockType::Bottleneck, 3, 8, 36, 3>;          // torchvision
using ResNet152Notebook = ResNetArch<BlockType::Bottleneck, 3, 4, 36, 3>;  // Raschka's CelebA notebook
static_assert(ResNet18::depth == 18 && ResNet34::depth == 34 && ResNet50::depth == 50 && ResNet101::depth == 101 &&
              ResNet152::depth == 152, "depth formula");

/// Load a model file and check it holds the architecture `Arch` (ModelFileError if not).
template <class Arch, class Backend = CpuBackend>
std::shared_ptr<const ResNet<Backend>> load_as(const std::string& path, const LoadOptions& opt = {}) {
    auto model = ResNet<Backend>::load(path, opt);
    const ArchConfig& a = model->arch();
    if (!Arch::matches(a))
        throw ModelFileError(path + ": expected a " + std::string(Arch::block == BlockType::Basic ? "basic" : "bottleneck") +
                             " ResNet with blocks [" + std::to_string(Arch::layers[0]) + "," + std::to_string(Arch::layers[1]) +
                             "," + std::to_string(Arch::layers[2]) + "," + std::to_string(Arch::layers[3]) +
                             "], file holds " + (a.block == BlockType::Basic ? "basic" : "bottleneck") + " [" +
                             std::to_string(a.layers[0]) + "," + std::to_string(a.layers[1]) + "," +
                             std::to_string(a.layers[2]) + "," + std::to_string(a.layers[3]) + "]");
    return model;
}

}  // namespace softbio
