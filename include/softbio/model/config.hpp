// softbio/model/config.hpp — a model's configuration, as read from a weight file's
// metadata (docs/FORMAT.md section 2): the network family and its hyper-parameters,
// the heads, the preprocessing. Typed data only; io/metadata.hpp parses and writes it,
// and each network family turns it into its list of units (model/network.hpp).
//
// Families: "resnet" (ArchConfig, heads) and face-api's three networks
// "faceapi_tiny_face_detector", "faceapi_landmark68", "faceapi_age_gender" (FaceApiConfig,
// outputs; input size and channels in ArchConfig's input_h/input_w/in_channels).
#pragma once

#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "softbio/core/face_crop_spec.hpp"
#include "softbio/core/preprocess_spec.hpp"

namespace softbio {

enum class BlockType { Basic, Bottleneck };
/// Which conv of a Bottleneck carries the stage stride: Conv2 = torchvision "v1.5"
/// (and Raschka's notebooks), Conv1 = the original paper ("v1").
enum class StrideIn { Conv1, Conv2 };

struct PoolConfig {
    enum class Type { AdaptiveAvg, Avg } type = Type::AdaptiveAvg;
    int kernel = 1, stride = 1, padding = 0;  // for Type::Avg
};

struct ArchConfig {
    BlockType block = BlockType::Bottleneck;
    std::array<int, 4> layers{3, 4, 23, 3};
    StrideIn stride_in = StrideIn::Conv2;
    int in_channels = 3;
    int base_width = 64;
    float bn_eps = 1e-5f;
    int input_h = 224, input_w = 224;
    PoolConfig pool;

    int expansion() const { return block == BlockType::Bottleneck ? 4 : 1; }
    /// Planes (the width of the 3x3 conv) of stage s = 0..3.
    int planes(int stage) const { return base_width << stage; }
    /// Output channels of stage s.
    int stage_channels(int stage) const { return planes(stage) * expansion(); }
    /// Total number of residual blocks.
    int blocks() const { return layers[0] + layers[1] + layers[2] + layers[3]; }
    /// Conventional depth: 2 (basic) or 3 (bottleneck) convs per block + stem + fc.
    int depth() const { return blocks() * (block == BlockType::Bottleneck ? 3 : 2) + 2; }
};

/// A published ResNet depth: block type and block counts per stage. The one table of
/// them in the C++ code (the converter has its own, in Python: weights_converter/layouts.py).
struct ResNetVariant {
    const char* name;
    int depth;
    BlockType block;
    std::array<int, 4> layers;
};
inline constexpr ResNetVariant kResNet18{"resnet18", 18, BlockType::Basic, {2, 2, 2, 2}};
inline constexpr ResNetVariant kResNet34{"resnet34", 34, BlockType::Basic, {3, 4, 6, 3}};
inline constexpr ResNetVariant kResNet50{"resnet50", 50, BlockType::Bottleneck, {3, 4, 6, 3}};
inline constexpr ResNetVariant kResNet101{"resnet101", 101, BlockType::Bottleneck, {3, 4, 23, 3}};
inline constexpr ResNetVariant kResNet152{"resnet152", 152, BlockType::Bottleneck, {3, 8, 36, 3}};  // torchvision
/// Raschka's CelebA ResNet-152 notebook uses [3, 4, 36, 3] (also 152 layers deep).
inline constexpr ResNetVariant kResNet152Notebook{"resnet152-notebook", 152, BlockType::Bottleneck, {3, 4, 36, 3}};
inline constexpr ResNetVariant kResNetVariants[] = {kResNet18, kResNet34, kResNet50, kResNet101, kResNet152,
                                                    kResNet152Notebook};

/// The torchvision variant of a depth (18/34/50/101/152), or Raschka's notebook 152.
inline const ResNetVariant& resnet_variant(int depth, bool notebook152 = false) {
    if (depth == 152 && notebook152) return kResNet152Notebook;
    for (const auto& v : kResNetVariants)
        if (v.depth == depth) return v;
    throw std::invalid_argument("no ResNet of depth " + std::to_string(depth) + " (known: 18, 34, 50, 101, 152)");
}

/// Set block type, block counts and the stride placement of a variant (torchvision's
/// v1.5 for bottlenecks; a basic block always strides its first conv).
inline void apply_variant(ArchConfig& a, const ResNetVariant& v) {
    a.block = v.block;
    a.layers = v.layers;
    a.stride_in = v.block == BlockType::Basic ? StrideIn::Conv1 : StrideIn::Conv2;
}

enum class HeadType { Softmax, Coral, Corn, OrCnn, Logits };

inline const char* head_type_name(HeadType t) {
    switch (t) {
        case HeadType::Softmax: return "softmax";
        case HeadType::Coral: return "coral";
        case HeadType::Corn: return "corn";
        case HeadType::OrCnn: return "orcnn";
        case HeadType::Logits: return "logits";
    }
    return "?";
}

struct HeadConfig {
    std::string name;
    HeadType type = HeadType::Softmax;
    std::vector<std::string> classes;  // softmax/logits: one name per output
    int num_classes = 0;               // C for softmax/logits, K for ordinal heads
    bool has_offset = false;
    double label_offset = 0.0;         // value = label + offset (ages)

    bool ordinal() const { return type == HeadType::Coral || type == HeadType::Corn || type == HeadType::OrCnn; }
    /// Rows of the head's weight matrix.
    int outputs() const {
        switch (type) {
            case HeadType::Coral: return 1;
            case HeadType::Corn: return num_classes - 1;
            case HeadType::OrCnn: return 2 * (num_classes - 1);
            default: return num_classes;
        }
    }
    /// Length of the head's bias vector = number of logits it reports.
    int logits() const { return type == HeadType::Coral ? num_classes - 1 : outputs(); }
};

inline constexpr const char* kFamilyResNet = "resnet";
inline constexpr const char* kFamilyFaceDetector = "faceapi_tiny_face_detector";
inline constexpr const char* kFamilyFaceLandmarks = "faceapi_landmark68";
inline constexpr const char* kFamilyFaceAgeGender = "faceapi_age_gender";

/// Whether `family` is one of face-api's networks (tensor_layout "tfjs", "outputs").
inline bool is_faceapi_family(const std::string& family) {
    return family == kFamilyFaceDetector || family == kFamilyFaceLandmarks || family == kFamilyFaceAgeGender;
}

/// What a face-api network's metadata adds (docs/FORMAT.md 2.6); each key belongs to
/// the family named beside it and is zero/empty for the others.
struct FaceApiConfig {
    int input_multiple = 0;                      // detector: 32 (the network's total stride)
    float leaky_alpha = 0.0f;                    // detector: 0.1
    std::vector<std::array<double, 2>> anchors;  // detector: (w, h) per anchor, in grid cells
    std::vector<std::string> box_encoding;       // detector: tx, ty, tw, th, to
    double score_threshold = 0.0;                // detector: a box is kept if score > this
    double iou_threshold = 0.0;                  // detector: NMS drops IoU > this
    std::string crop;                            // landmarks "detection_box", age/gender "aligned_rect"
    int points = 0;                              // landmarks: 68
    int boxes_per_cell() const { return int(anchors.size()); }
};

/// One output of a face-api network (metadata "outputs"), as written in the file.
struct OutputConfig {
    std::string name;                  // "grid", "landmarks", "age", "gender"
    std::string type;                  // "", "regression", "softmax"
    std::string unit, meaning;         // free text ("years")
    std::string weight, bias;          // the fc tensors it comes from (age/gender)
    std::vector<std::string> classes;  // softmax: one name per output ("male", "female")
    std::vector<std::string> shape;    // as written: "136", or "S/32" (the detector's grid)
};

struct ModelConfig {
    int format_version = 1;
    std::string family = kFamilyResNet;  // which network: resnet or a faceapi_* family
    ArchConfig arch;                     // resnet: its hyper-parameters; all: input_h/input_w/in_channels
    std::vector<HeadConfig> heads;       // resnet
    std::string tensor_layout;           // faceapi: "tfjs" (resnet: PyTorch's, not written)
    FaceApiConfig faceapi;               // faceapi
    std::vector<OutputConfig> outputs;   // faceapi
    std::string origin;                  // faceapi: the "origin" object (package, licence, ...) as JSON text
    PreprocessSpec preprocess;
    std::optional<FaceCropSpec> face_crop;  // resnet: how its faces were cut (face pipeline); none: fed whole images
    bool trained = false;
    std::string description, source;

    bool is_faceapi() const { return is_faceapi_family(family); }
};

}  // namespace softbio
