// softbio/io/metadata.hpp — the metadata document of a model file (docs/FORMAT.md
// section 2) <-> ModelConfig: parsing with full validation (every message names the file
// and the key), and writing it back (for tools that write files).
#pragma once

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "softbio/core/error.hpp"
#include "softbio/io/json_util.hpp"
#include "softbio/io/preprocess_json.hpp"
#include "softbio/model/config.hpp"
#include "softbio/model/networks.hpp"

namespace softbio {

/// The metadata format version this build reads and writes.
inline constexpr int kFormatVersion = 1;

/// Largest model.input_size side a file may declare (the network's input tensor; not
/// the decoded-image limit of image/decode.hpp, nor the preprocessing limit).
inline constexpr int kMaxInputSide = 4096;

namespace detail {

/// Typed access to the metadata document with messages naming file and key.
class MetadataReader {
public:
    explicit MetadataReader(std::string file) : file_(std::move(file)) {}
    [[noreturn]] void fail(const std::string& key, const std::string& why) const {
        throw ModelFileError(file_ + ": metadata " + key + ": " + why);
    }
    const nlohmann::json& get(const nlohmann::json& obj, const std::string& key, const std::string& path) const {
        if (!obj.is_object() || !obj.contains(key)) fail(path + key, "missing");
        return obj.at(key);
    }
    int integer(const nlohmann::json& obj, const std::string& key, const std::string& path, int lo, int hi) const {
        const auto& v = get(obj, key, path);
        long long x = 0;
        if (!json_integer_in(v, lo, hi, x))
            fail(path + key, "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", found " +
                                 brief_json(v));
        return int(x);
    }
    double number(const nlohmann::json& obj, const std::string& key, const std::string& path) const {
        const auto& v = get(obj, key, path);
        if (!v.is_number()) fail(path + key, "expected a number, found " + brief_json(v));
        return v.get<double>();
    }
    std::string string(const nlohmann::json& obj, const std::string& key, const std::string& path) const {
        const auto& v = get(obj, key, path);
        if (!v.is_string()) fail(path + key, "expected a string, found " + brief_json(v));
        return v.get<std::string>();
    }
    std::string choice(const nlohmann::json& obj, const std::string& key, const std::string& path,
                       const std::vector<std::string>& allowed) const {
        std::string v = string(obj, key, path);
        for (const auto& a : allowed)
            if (v == a) return v;
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        fail(path + key, "expected one of {" + list + "}, found \"" + v + "\"");
    }
    std::pair<int, int> size2(const nlohmann::json& obj, const std::string& key, const std::string& path) const {
        const auto& v = get(obj, key, path);
        long long h = 0, w = 0;
        if (!v.is_array() || v.size() != 2 || !json_integer_in(v[0], 1, kMaxInputSide, h) ||
            !json_integer_in(v[1], 1, kMaxInputSide, w))
            fail(path + key, "expected [height, width] of integers in 1.." + std::to_string(kMaxInputSide) + ", found " +
                                 brief_json(v));
        return {int(h), int(w)};
    }

private:
    std::string file_;
};

}  // namespace detail

/// Parse and validate the metadata document (docs/FORMAT.md section 2).
inline ModelConfig parse_model_config(const std::string& file, const std::string& document) {
    detail::MetadataReader r(file);
    JsonDocument parsed;
    parse_untrusted_json(document.data(), document.size(), file + ": metadata", parsed);
    const nlohmann::json& doc = parsed.root;
    if (!doc.is_object()) throw ModelFileError(file + ": metadata is not a JSON object");
    ModelConfig cfg;
    const auto& ver = r.get(doc, "format_version", "");
    if (!ver.is_number_integer()) r.fail("format_version", "expected an integer, found " + brief_json(ver));
    long long version = 0;
    if (!json_integer_in(ver, kFormatVersion, kFormatVersion, version))  // before narrowing: 2^32 + 1 is not 1
        throw ModelFileError(file + ": unsupported format version " + brief_json(ver) + ", this build reads " +
                             std::to_string(kFormatVersion));
    cfg.format_version = kFormatVersion;

    const auto& m = r.get(doc, "model", "");
    ArchConfig& a = cfg.arch;
    cfg.family = r.string(m, "family", "model.");
    if (cfg.family != "resnet") r.fail("model.family", "unknown architecture \"" + cfg.family + "\" (this build knows: resnet)");
    a.block = r.choice(m, "block", "model.", {"basic", "bottleneck"}) == "basic" ? BlockType::Basic : BlockType::Bottleneck;
    const auto& layers = r.get(m, "layers", "model.");
    if (!layers.is_array() || layers.size() != 4) r.fail("model.layers", "expected 4 block counts, found " + brief_json(layers));
    for (int s = 0; s < 4; ++s) {
        long long count = 0;
        if (!json_integer_in(layers[s], 1, 256, count))
            r.fail("model.layers", "expected 4 block counts in 1..256, found " + brief_json(layers));
        a.layers[s] = int(count);
    }
    if (m.contains("stride_in")) {
        a.stride_in = r.choice(m, "stride_in", "model.", {"conv1", "conv2"}) == "conv1" ? StrideIn::Conv1 : StrideIn::Conv2;
        if (a.block == BlockType::Basic && a.stride_in != StrideIn::Conv1)
            r.fail("model.stride_in", "a basic block always strides its first conv; expected \"conv1\", found \"conv2\"");
    } else {
        a.stride_in = a.block == BlockType::Basic ? StrideIn::Conv1 : StrideIn::Conv2;
    }
    a.in_channels = r.integer(m, "in_channels", "model.", 1, 4);
    a.base_width = r.integer(m, "base_width", "model.", 1, 1024);
    a.bn_eps = float(r.number(m, "bn_eps", "model."));
    if (!(a.bn_eps > 0 && a.bn_eps < 1)) r.fail("model.bn_eps", "expected a small positive number, found " + brief_json(m["bn_eps"]));
    std::tie(a.input_h, a.input_w) = r.size2(m, "input_size", "model.");
    const auto& pool = r.get(m, "pool", "model.");
    if (r.choice(pool, "type", "model.pool.", {"adaptive_avg", "avg"}) == "avg") {
        a.pool.type = PoolConfig::Type::Avg;
        a.pool.kernel = r.integer(pool, "kernel", "model.pool.", 1, 64);
        a.pool.stride = r.integer(pool, "stride", "model.pool.", 1, 64);
        a.pool.padding = r.integer(pool, "padding", "model.pool.", 0, 32);
        if (2 * a.pool.padding > a.pool.kernel)
            r.fail("model.pool.padding", "padding must be at most half the kernel (PyTorch's rule)");
    }
    const auto& heads = r.get(doc, "heads", "");
    if (!heads.is_array() || heads.empty()) r.fail("heads", "expected a non-empty array of heads");
    std::set<std::string> names;
    for (size_t i = 0; i < heads.size(); ++i) {
        const std::string p = "heads[" + std::to_string(i) + "].";
        const auto& h = heads[i];
        HeadConfig hc;
        hc.name = r.string(h, "name", p);
        const bool word = !hc.name.empty() && std::all_of(hc.name.begin(), hc.name.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        });
        if (!word) r.fail(p + "name", "\"" + hc.name + "\" must match [A-Za-z0-9_]+");
        if (!names.insert(hc.name).second) r.fail(p + "name", "duplicate head name \"" + hc.name + "\"");
        const std::string type = r.choice(h, "type", p, {"softmax", "coral", "corn", "orcnn", "logits"});
        hc.type = type == "softmax" ? HeadType::Softmax
                  : type == "coral" ? HeadType::Coral
                  : type == "corn"  ? HeadType::Corn
                  : type == "orcnn" ? HeadType::OrCnn
                                    : HeadType::Logits;
        if (hc.ordinal()) {
            hc.num_classes = r.integer(h, "num_classes", p, 2, 100000);
        } else if (h.contains("classes")) {
            const auto& cl = h["classes"];
            if (!cl.is_array() || cl.empty()) r.fail(p + "classes", "expected a non-empty array of strings");
            for (const auto& c : cl) {
                if (!c.is_string()) r.fail(p + "classes", "expected strings, found " + brief_json(c));
                hc.classes.push_back(c.get<std::string>());
            }
            hc.num_classes = int(hc.classes.size());
            if (h.contains("num_classes") && r.integer(h, "num_classes", p, 1, 100000) != hc.num_classes)
                r.fail(p + "num_classes", "disagrees with the number of classes listed");
        } else {
            hc.num_classes = r.integer(h, "num_classes", p, 1, 100000);
        }
        if (!hc.ordinal() && hc.classes.empty())
            for (int c = 0; c < hc.num_classes; ++c) hc.classes.push_back(std::to_string(c));
        if (h.contains("label_offset")) {
            if (hc.type == HeadType::Logits) r.fail(p + "label_offset", "not allowed on a logits head");
            hc.has_offset = true;
            hc.label_offset = r.number(h, "label_offset", p);
        }
        cfg.heads.push_back(std::move(hc));
    }

    cfg.preprocess = parse_preprocess(r.get(doc, "preprocess", ""), file + ": metadata");  // throws ModelFileError
    const PreprocessSpec& pre = cfg.preprocess;
    if (pre.output_height() != 0 && (pre.output_height() != a.input_h || pre.output_width() != a.input_w))
        r.fail("preprocess", "the chain produces " + std::to_string(pre.output_height()) + "x" +
                                 std::to_string(pre.output_width()) + " images but model.input_size is " +
                                 std::to_string(a.input_h) + "x" + std::to_string(a.input_w));
    // The network must work at its input size (every window fits its padded input).
    try {
        describe_network(cfg);
    } catch (const ShapeError& e) {
        r.fail("model.input_size", "input " + std::to_string(a.input_h) + "x" + std::to_string(a.input_w) +
                                       " is too small for this network and its pooling window: " + e.what());
    }
    const auto& trained = r.get(doc, "trained", "");
    if (!trained.is_boolean()) r.fail("trained", "expected true or false, found " + brief_json(trained));
    cfg.trained = trained.get<bool>();
    if (doc.contains("description")) cfg.description = r.string(doc, "description", "");
    if (doc.contains("source")) cfg.source = r.string(doc, "source", "");
    return cfg;
}

/// Serialise a ModelConfig as the metadata document (used by tools that write files).
inline std::string model_config_to_json(const ModelConfig& cfg) {
    const ArchConfig& a = cfg.arch;
    nlohmann::json m = {{"family", cfg.family},
                        {"block", a.block == BlockType::Basic ? "basic" : "bottleneck"},
                        {"layers", a.layers},
                        {"stride_in", a.stride_in == StrideIn::Conv1 ? "conv1" : "conv2"},
                        {"in_channels", a.in_channels},
                        {"base_width", a.base_width},
                        {"bn_eps", a.bn_eps},
                        {"input_size", {a.input_h, a.input_w}}};
    if (a.pool.type == PoolConfig::Type::AdaptiveAvg)
        m["pool"] = {{"type", "adaptive_avg"}};
    else
        m["pool"] = {{"type", "avg"}, {"kernel", a.pool.kernel}, {"stride", a.pool.stride}, {"padding", a.pool.padding}};
    nlohmann::json heads = nlohmann::json::array();
    for (const auto& h : cfg.heads) {
        nlohmann::json j = {{"name", h.name}, {"type", head_type_name(h.type)}};
        if (h.ordinal()) j["num_classes"] = h.num_classes;
        else j["classes"] = h.classes;
        if (h.has_offset) j["label_offset"] = h.label_offset;
        heads.push_back(j);
    }
    nlohmann::json doc = {{"format_version", kFormatVersion}, {"model", m}, {"heads", heads},
                          {"preprocess", preprocess_to_json(cfg.preprocess)}, {"trained", cfg.trained}};
    if (!cfg.description.empty()) doc["description"] = cfg.description;
    if (!cfg.source.empty()) doc["source"] = cfg.source;
    return doc.dump();
}

}  // namespace softbio
