// softbio/model/config.hpp — the description of a network, as read from a weight
// file's metadata (docs/FORMAT.md section 2): architecture, heads, preprocessing.
#pragma once

#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
    /// Spatial size after the stem (conv 7x7/2 pad 3, then maxpool 3x3/2 pad 1).
    static int after_stem(int x) {
        x = (x + 2 * 3 - 7) / 2 + 1;
        return (x + 2 * 1 - 3) / 2 + 1;
    }
    /// Spatial size at the end of stage 4 (three stride-2 stages: 3x3 pad 1 stride 2).
    static int after_stages(int x) {
        x = after_stem(x);
        for (int s = 1; s < 4; ++s) x = (x + 2 - 3) / 2 + 1;
        return x;
    }
    /// Width F of the feature vector the heads see.
    long long feature_width() const {
        const long long c4 = stage_channels(3);
        if (pool.type == PoolConfig::Type::AdaptiveAvg) return c4;
        const long long h = (after_stages(input_h) + 2 * pool.padding - pool.kernel) / pool.stride + 1;
        const long long w = (after_stages(input_w) + 2 * pool.padding - pool.kernel) / pool.stride + 1;
        return c4 * h * w;
    }
    /// Total number of residual blocks.
    int blocks() const { return layers[0] + layers[1] + layers[2] + layers[3]; }
    /// Conventional depth: 2 (basic) or 3 (bottleneck) convs per block + stem + fc.
    int depth() const { return blocks() * (block == BlockType::Bottleneck ? 3 : 2) + 2; }
};

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

struct ModelConfig {
    int format_version = 1;
    ArchConfig arch;
    std::vector<HeadConfig> heads;
    nlohmann::json preprocess;  // validated by the image pipeline (softbio/image/preprocess.hpp)
    bool trained = false;
    std::string description, source;
};

}  // namespace softbio
