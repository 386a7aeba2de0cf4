// softbio/io/model_file.hpp — open a softbio model file and check it completely.
//
// open_model_file() reads the safetensors container (io/safetensors.hpp), parses the
// metadata document of docs/FORMAT.md into a ModelConfig, derives from the
// architecture the exact list of tensors (name, shape) the network needs, and checks
// the file against it: nothing missing, nothing extra, every shape and dtype right.
// Any problem is one ModelFileError naming the file and, where there is one, the
// tensor or metadata key. Only a fully valid file yields a ModelFile.
#pragma once

#include <cmath>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "softbio/image/preprocess_spec.hpp"
#include "softbio/io/safetensors.hpp"
#include "softbio/layers/layer_common.hpp"
#include "softbio/model/config.hpp"

namespace softbio {

/// The metadata format version this build reads and writes.
inline constexpr int kFormatVersion = 1;

/// A tensor the architecture requires: name and PyTorch shape.
struct ExpectedTensor {
    std::string name;
    std::vector<int64_t> shape;
};

/// Every tensor a network with this configuration has, in a stable order.
inline std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg) {
    const ArchConfig& a = cfg.arch;
    std::vector<ExpectedTensor> out;
    auto conv = [&](const std::string& n, int co, int ci, int k) { out.push_back({n + ".weight", {co, ci, k, k}}); };
    auto bn = [&](const std::string& n, int c) {
        for (const char* p : {".weight", ".bias", ".running_mean", ".running_var"}) out.push_back({n + p, {c}});
    };
    conv("conv1", a.base_width, a.in_channels, 7);
    bn("bn1", a.base_width);
    int in_c = a.base_width;
    for (int s = 0; s < 4; ++s) {
        const int planes = a.planes(s), out_c = a.stage_channels(s), stride = s == 0 ? 1 : 2;
        for (int b = 0; b < a.layers[s]; ++b) {
            const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b);
            if (a.block == BlockType::Basic) {
                conv(p + ".conv1", planes, in_c, 3);
                bn(p + ".bn1", planes);
                conv(p + ".conv2", planes, planes, 3);
                bn(p + ".bn2", planes);
            } else {
                conv(p + ".conv1", planes, in_c, 1);
                bn(p + ".bn1", planes);
                conv(p + ".conv2", planes, planes, 3);
                bn(p + ".bn2", planes);
                conv(p + ".conv3", out_c, planes, 1);
                bn(p + ".bn3", out_c);
            }
            if (b == 0 && (stride != 1 || in_c != out_c)) {
                conv(p + ".downsample.0", out_c, in_c, 1);
                bn(p + ".downsample.1", out_c);
            }
            in_c = out_c;
        }
    }
    const int64_t f = a.feature_width();
    for (const auto& h : cfg.heads) {
        out.push_back({"head." + h.name + ".weight", {h.outputs(), f}});
        out.push_back({"head." + h.name + ".bias", {h.logits()}});
    }
    return out;
}

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
        if (!v.is_number_integer()) fail(path + key, "expected an integer, found " + v.dump());
        const long long x = v.get<long long>();
        if (x < lo || x > hi)
            fail(path + key, "expected " + std::to_string(lo) + ".." + std::to_string(hi) + ", found " + std::to_string(x));
        return int(x);
    }
    double number(const nlohmann::json& obj, const std::string& key, const std::string& path) const {
        const auto& v = get(obj, key, path);
        if (!v.is_number()) fail(path + key, "expected a number, found " + v.dump());
        return v.get<double>();
    }
    std::string string(const nlohmann::json& obj, const std::string& key, const std::string& path) const {
        const auto& v = get(obj, key, path);
        if (!v.is_string()) fail(path + key, "expected a string, found " + v.dump());
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
        if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer() ||
            v[0].get<long long>() < 1 || v[1].get<long long>() < 1 || v[0].get<long long>() > 16384 ||
            v[1].get<long long>() > 16384)
            fail(path + key, "expected [height, width] of positive integers, found " + v.dump());
        return {v[0].get<int>(), v[1].get<int>()};
    }

private:
    std::string file_;
};

}  // namespace detail

/// Parse and validate the metadata document (docs/FORMAT.md section 2).
inline ModelConfig parse_model_config(const std::string& file, const std::string& document) {
    detail::MetadataReader r(file);
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(document);
    } catch (const nlohmann::json::exception& e) {
        throw ModelFileError(file + ": metadata is not valid JSON: " + e.what());
    }
    if (!doc.is_object()) throw ModelFileError(file + ": metadata is not a JSON object");
    ModelConfig cfg;
    const auto& ver = r.get(doc, "format_version", "");
    if (!ver.is_number_integer()) r.fail("format_version", "expected an integer, found " + ver.dump());
    cfg.format_version = ver.get<int>();
    if (cfg.format_version != kFormatVersion)
        throw ModelFileError(file + ": unsupported format version " + std::to_string(cfg.format_version) +
                             ", this build reads " + std::to_string(kFormatVersion));

    const auto& m = r.get(doc, "model", "");
    ArchConfig& a = cfg.arch;
    const std::string family = r.string(m, "family", "model.");
    if (family != "resnet") r.fail("model.family", "unknown architecture \"" + family + "\" (this build knows: resnet)");
    a.block = r.choice(m, "block", "model.", {"basic", "bottleneck"}) == "basic" ? BlockType::Basic : BlockType::Bottleneck;
    const auto& layers = r.get(m, "layers", "model.");
    if (!layers.is_array() || layers.size() != 4) r.fail("model.layers", "expected 4 block counts, found " + layers.dump());
    for (int s = 0; s < 4; ++s) {
        if (!layers[s].is_number_integer() || layers[s].get<int>() < 1 || layers[s].get<int>() > 256)
            r.fail("model.layers", "expected 4 block counts in 1..256, found " + layers.dump());
        a.layers[s] = layers[s].get<int>();
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
    if (!(a.bn_eps > 0 && a.bn_eps < 1)) r.fail("model.bn_eps", "expected a small positive number, found " + std::to_string(a.bn_eps));
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
    const int final_size = std::min(ArchConfig::after_stages(a.input_h), ArchConfig::after_stages(a.input_w));
    if (final_size < 1 || (a.pool.type == PoolConfig::Type::Avg && final_size + 2 * a.pool.padding < a.pool.kernel))
        r.fail("model.input_size", "input " + std::to_string(a.input_h) + "x" + std::to_string(a.input_w) +
                                       " is too small for this network and its pooling window");

    const auto& heads = r.get(doc, "heads", "");
    if (!heads.is_array() || heads.empty()) r.fail("heads", "expected a non-empty array of heads");
    std::set<std::string> names;
    static const std::regex name_re("[A-Za-z0-9_]+");
    for (size_t i = 0; i < heads.size(); ++i) {
        const std::string p = "heads[" + std::to_string(i) + "].";
        const auto& h = heads[i];
        HeadConfig hc;
        hc.name = r.string(h, "name", p);
        if (!std::regex_match(hc.name, name_re)) r.fail(p + "name", "\"" + hc.name + "\" must match [A-Za-z0-9_]+");
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
                if (!c.is_string()) r.fail(p + "classes", "expected strings, found " + c.dump());
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

    cfg.preprocess = r.get(doc, "preprocess", "");
    const PreprocessSpec pre = parse_preprocess(cfg.preprocess, file + ": metadata");  // throws ModelFileError
    if (pre.output_height() != 0 && (pre.output_height() != a.input_h || pre.output_width() != a.input_w))
        r.fail("preprocess", "the chain produces " + std::to_string(pre.output_height()) + "x" +
                                 std::to_string(pre.output_width()) + " images but model.input_size is " +
                                 std::to_string(a.input_h) + "x" + std::to_string(a.input_w));
    const auto& trained = r.get(doc, "trained", "");
    if (!trained.is_boolean()) r.fail("trained", "expected true or false, found " + trained.dump());
    cfg.trained = trained.get<bool>();
    if (doc.contains("description")) cfg.description = r.string(doc, "description", "");
    if (doc.contains("source")) cfg.source = r.string(doc, "source", "");
    return cfg;
}

/// Serialise a ModelConfig as the metadata document (used by tools that write files).
inline std::string model_config_to_json(const ModelConfig& cfg) {
    const ArchConfig& a = cfg.arch;
    nlohmann::json m = {{"family", "resnet"},
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
                          {"preprocess", cfg.preprocess}, {"trained", cfg.trained}};
    if (!cfg.description.empty()) doc["description"] = cfg.description;
    if (!cfg.source.empty()) doc["source"] = cfg.source;
    return doc.dump();
}

/// A validated model file: its configuration and its tensors, by name.
class ModelFile {
public:
    const std::string& path() const { return path_; }
    const ModelConfig& config() const { return config_; }
    /// The tensor `name` (validated to exist with the expected shape), fp32 data.
    const TensorRef& tensor(const std::string& name) const {
        auto it = tensors_.find(name);
        if (it == tensors_.end()) throw ModelFileError(path_ + ": tensor " + name + " is missing");
        return it->second;
    }

private:
    friend ModelFile open_model_file(const std::string& path);
    std::string path_;
    ModelConfig config_;
    std::shared_ptr<const MappedFile> mapping_;          // keeps zero-copy tensors alive
    std::vector<std::vector<float>> copies_;             // unaligned tensors, copied once
    std::map<std::string, TensorRef> tensors_;
};

/// Open, parse and fully validate a softbio model file (docs/FORMAT.md).
inline ModelFile open_model_file(const std::string& path) {
    SafetensorsFile st(path);
    auto meta = st.metadata().find("softbio");
    if (meta == st.metadata().end())
        throw ModelFileError(path + ": no softbio metadata (__metadata__.softbio is missing): not a softbio model "
                                    "file? Convert PyTorch checkpoints with weights_converter/convert.py");
    ModelFile mf;
    mf.path_ = path;
    mf.config_ = parse_model_config(path, meta->second);
    mf.mapping_ = st.mapping();

    const auto expected = expected_tensors(mf.config_);
    std::set<std::string> wanted;
    for (const auto& e : expected) {
        wanted.insert(e.name);
        if (!st.has(e.name))
            throw ModelFileError(path + ": tensor " + e.name + " is missing (expected " + shape_string(e.shape) + " F32)");
        const SafetensorInfo& t = st.info(e.name);
        if (t.dtype != "F32" || t.shape != e.shape)
            throw ModelFileError(path + ": tensor " + e.name + ": expected " + shape_string(e.shape) + " F32, file has " +
                                 shape_string(t.shape) + " " + t.dtype);
    }
    for (const auto& [name, info] : st.tensors())
        if (!wanted.count(name))
            throw ModelFileError(path + ": unexpected tensor " + name + " " + shape_string(info.shape) +
                                 " (not part of the architecture the metadata describes)");
    for (const auto& e : expected) {
        const SafetensorInfo& t = st.info(e.name);
        TensorRef ref;
        ref.shape = t.shape;
        const uint8_t* p = st.bytes(t);
        if (reinterpret_cast<uintptr_t>(p) % alignof(float) == 0) {
            ref.data = reinterpret_cast<const float*>(p);  // zero-copy
        } else {
            mf.copies_.emplace_back(ref.numel());
            std::memcpy(mf.copies_.back().data(), p, ref.numel() * sizeof(float));
            ref.data = mf.copies_.back().data();
        }
        for (size_t i = 0; i < ref.numel(); ++i)
            if (!std::isfinite(ref.data[i]))
                throw ModelFileError(path + ": tensor " + e.name + " holds a non-finite value (NaN or Inf) at index " +
                                     std::to_string(i));
        mf.tensors_[e.name] = std::move(ref);
    }
    return mf;
}

}  // namespace softbio
