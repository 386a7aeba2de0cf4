// softbio/model/architectures.hpp — compile-time names for the common ResNets.
//
// A ResNet's structure is data (block type + four block counts, the table in
// config.hpp), held in ArchConfig at run time, so any published variant loads from its
// file's metadata. These aliases add compile-time checking for code that expects a
// particular network:
//
//     auto model = softbio::load_as<softbio::ResNet101>("gender_age.safetensors");
//
// refuses a file holding any other architecture. They are tag types, not nested
// layer types: instantiating ResNet-152 costs no more compile time than ResNet-18.
#pragma once

#include <string>

#include "softbio/core/error.hpp"
#include "softbio/model/config.hpp"

namespace softbio {

/// A ResNet depth as a type; `Variant` is one entry of the table in config.hpp.
template <const ResNetVariant& Variant>
struct ResNetArch {
    static constexpr const ResNetVariant& variant = Variant;
    static bool matches(const ArchConfig& a) { return a.block == Variant.block && a.layers == Variant.layers; }
    /// Throw ModelFileError naming `path` unless `a` is this architecture.
    static void check(const ArchConfig& a, const std::string& path) {
        if (matches(a)) return;
        auto describe = [](BlockType block, const std::array<int, 4>& l) {
            return std::string(block == BlockType::Basic ? "basic" : "bottleneck") + " [" + std::to_string(l[0]) + "," +
                   std::to_string(l[1]) + "," + std::to_string(l[2]) + "," + std::to_string(l[3]) + "]";
        };
        throw ModelFileError(path + ": expected a " + Variant.name + " (" + describe(Variant.block, Variant.layers) +
                             "), file holds a ResNet with blocks " + describe(a.block, a.layers));
    }
};

using ResNet18 = ResNetArch<kResNet18>;
using ResNet34 = ResNetArch<kResNet34>;
using ResNet50 = ResNetArch<kResNet50>;
using ResNet101 = ResNetArch<kResNet101>;
using ResNet152 = ResNetArch<kResNet152>;                  // torchvision
using ResNet152Notebook = ResNetArch<kResNet152Notebook>;  // Raschka's CelebA notebook

}  // namespace softbio
