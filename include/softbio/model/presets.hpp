// softbio/model/presets.hpp — model configurations for the published layouts, used to
// generate untrained demo/benchmark files (softbio-make-model) and in tests.
//
//   flagship          ResNet-101 (Raschka CelebA layout: AvgPool2d(7,1,2) at 128 px,
//                     CenterCrop 178 -> Resize 128) with a softmax gender head
//                     (female/male) and a CORAL age head (AFAD: K = 26, ages 15..40)
//   torchvision-rN    torchvision resnetN (N = 18/34/50/101/152): adaptive pool,
//                     224 px, 1000 logits; torchvision's eval transform: Resize 256
//                     (shorter side) -> CenterCrop 224 -> ToTensor -> ImageNet Normalize
//   celeba-rN         Raschka's CelebA gender notebook ResNet-N (152 = [3,4,36,3])
//   coral-afad        coral-cnn 2020 ResNet-34 CORAL, AvgPool2d(4) at 120 px
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "softbio/model/config.hpp"

namespace softbio {

inline std::vector<std::string> preset_names() {
    return {"flagship", "celeba-r18", "celeba-r34", "celeba-r50", "celeba-r101", "celeba-r152", "coral-afad",
            "torchvision-r18", "torchvision-r34", "torchvision-r50", "torchvision-r101", "torchvision-r152"};
}

inline ModelConfig preset_config(const std::string& name) {
    ModelConfig cfg;
    auto set_depth = [&](int depth, bool notebook152) { apply_variant(cfg.arch, resnet_variant(depth, notebook152)); };
    auto raschka_pool = [&]() {
        cfg.arch.pool.type = PoolConfig::Type::Avg;
        cfg.arch.pool.kernel = 7, cfg.arch.pool.stride = 1, cfg.arch.pool.padding = 2;
    };
    HeadConfig gender;
    gender.name = "gender", gender.type = HeadType::Softmax, gender.classes = {"female", "male"}, gender.num_classes = 2;
    using Step = PreprocessStep;
    const PreprocessSpec celeba_steps{{Step::center_crop(178, 178), Step::resize(128, 128), Step::to_tensor()}};
    auto starts = [&](const std::string& p) { return name.rfind(p, 0) == 0; };
    if (name == "flagship" || starts("celeba-r")) {
        set_depth(name == "flagship" ? 101 : std::stoi(name.substr(8)), true);
        cfg.arch.input_h = cfg.arch.input_w = 128;
        raschka_pool();
        cfg.heads = {gender};
        if (name == "flagship") {
            HeadConfig age;
            age.name = "age", age.type = HeadType::Coral, age.num_classes = 26, age.has_offset = true, age.label_offset = 15;
            cfg.heads.push_back(age);
        }
        cfg.preprocess = celeba_steps;
        cfg.description = name == "flagship" ? "ResNet-101 (Raschka CelebA layout) with a gender head and a CORAL age head (AFAD ages 15-40)"
                                              : "Raschka CelebA gender ResNet-" + name.substr(8);
    } else if (name == "coral-afad") {
        set_depth(34, false);
        cfg.arch.input_h = cfg.arch.input_w = 120;
        cfg.arch.pool.type = PoolConfig::Type::Avg;
        cfg.arch.pool.kernel = 4, cfg.arch.pool.stride = 4, cfg.arch.pool.padding = 0;
        HeadConfig age;
        age.name = "age", age.type = HeadType::Coral, age.num_classes = 26, age.has_offset = true, age.label_offset = 15;
        cfg.heads = {age};
        cfg.preprocess = {{Step::resize(128, 128), Step::center_crop(120, 120), Step::to_tensor()}};
        cfg.description = "coral-cnn (2020) ResNet-34 CORAL age model, AFAD";
    } else if (starts("torchvision-r")) {
        set_depth(std::stoi(name.substr(13)), false);
        cfg.arch.input_h = cfg.arch.input_w = 224;
        HeadConfig logits;
        logits.name = "imagenet", logits.type = HeadType::Logits, logits.num_classes = 1000;
        for (int c = 0; c < 1000; ++c) logits.classes.push_back(std::to_string(c));
        cfg.heads = {logits};
        // torchvision's published evaluation transform of the IMAGENET1K_V1 weights
        // (docs/MODELS.md 4.4): Resize(256) keeps the aspect ratio (shorter side 256).
        cfg.preprocess = {{Step::resize_shorter(256), Step::center_crop(224, 224), Step::to_tensor(),
                           Step::normalize({0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f})}};
        cfg.description = "torchvision " + name.substr(12) + " layout";
    } else {
        std::string list;
        for (const auto& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
        throw std::invalid_argument("unknown preset \"" + name + "\" (known: " + list + ")");
    }
    cfg.trained = false;
    return cfg;
}

}  // namespace softbio
