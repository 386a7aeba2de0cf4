// softbio/io/metadata.hpp — the metadata document of a model file (docs/FORMAT.md
// section 2) <-> ModelConfig: parsing with full validation (every message names the file
// and the key), and writing it back (for tools that write files). Families: "resnet"
// (model keys of FORMAT.md 2.2, "heads") and face-api's "faceapi_tiny_face_detector",
// "faceapi_landmark68", "faceapi_age_gender" (FORMAT.md 2.6: tensor_layout "tfjs", their
// model keys, "outputs", "origin"); the common keys are read the same way for all.
#pragma once

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "softbio/core/error.hpp"
#include "softbio/io/face_crop_json.hpp"
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
    /// A finite number in [lo, hi].
    double number_in(const nlohmann::json& obj, const std::string& key, const std::string& path, double lo,
                     double hi) const {
        const auto& v = get(obj, key, path);
        if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < lo || v.get<double>() > hi)
            fail(path + key, "expected a number in " + brief_json(lo) + ".." + brief_json(hi) + ", found " + brief_json(v));
        return v.get<double>();
    }
    /// Refuse keys of `obj` that are not in `known` (a misspelt key must not be ignored).
    void known_keys(const nlohmann::json& obj, const std::string& path, const std::vector<std::string>& known) const {
        for (auto it = obj.begin(); it != obj.end(); ++it)
            if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
                std::string list;
                for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
                fail(path + it.key(), "unknown key (known here: " + list + ")");
            }
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

namespace detail {

/// The model keys and heads of a ResNet (docs/FORMAT.md 2.2, 2.3).
inline void parse_resnet_config(const MetadataReader& r, const nlohmann::json& doc, const nlohmann::json& m,
                                ModelConfig& cfg) {
    ArchConfig& a = cfg.arch;
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

}

/// The model keys, outputs and origin of a face-api network (docs/FORMAT.md 2.6).
inline void parse_faceapi_config(const MetadataReader& r, const nlohmann::json& doc, const nlohmann::json& m,
                                 ModelConfig& cfg) {
    const std::string& fam = cfg.family;
    const bool detector = fam == kFamilyFaceDetector, landmarks = fam == kFamilyFaceLandmarks;
    std::vector<std::string> known = {"family", "tensor_layout", "input_size", "in_channels"};
    if (detector)
        known.insert(known.end(), {"input_multiple", "leaky_relu_alpha", "anchors", "boxes_per_cell", "box_encoding",
                                   "score_threshold", "iou_threshold"});
    else
        known.insert(known.end(), {"crop"});
    if (landmarks) known.push_back("points");
    r.known_keys(m, "model.", known);
    cfg.tensor_layout = r.choice(m, "tensor_layout", "model.", {"tfjs"});
    ArchConfig& a = cfg.arch;
    a.in_channels = r.integer(m, "in_channels", "model.", 3, 3);
    std::tie(a.input_h, a.input_w) = r.size2(m, "input_size", "model.");
    FaceApiConfig& f = cfg.faceapi;
    if (detector) {
        f.input_multiple = r.integer(m, "input_multiple", "model.", 32, 32);  // the network's total stride
        if (a.input_h != a.input_w || a.input_h % f.input_multiple != 0)
            r.fail("model.input_size", "expected a square size, a multiple of 32, found [" + std::to_string(a.input_h) +
                                           ", " + std::to_string(a.input_w) + "]");
        f.leaky_alpha = float(r.number_in(m, "leaky_relu_alpha", "model.", 0.0, 1.0));
        if (!(f.leaky_alpha > 0.0f)) r.fail("model.leaky_relu_alpha", "expected a slope in (0, 1], found 0");
        const auto& anchors = r.get(m, "anchors", "model.");
        if (!anchors.is_array() || anchors.empty() || anchors.size() > 64)
            r.fail("model.anchors", "expected 1..64 [width, height] pairs, found " + brief_json(anchors));
        for (size_t i = 0; i < anchors.size(); ++i) {
            const auto& p = anchors[i];
            bool good = p.is_array() && p.size() == 2;
            for (size_t k = 0; good && k < 2; ++k)
                good = p[k].is_number() && std::isfinite(p[k].get<double>()) && p[k].get<double>() > 0 && p[k].get<double>() < 1e6;
            if (!good)
                r.fail("model.anchors[" + std::to_string(i) + "]",
                       "expected [width, height], two positive numbers (grid cells), found " + brief_json(p));
            f.anchors.push_back({p[0].get<double>(), p[1].get<double>()});
        }
        const int boxes = r.integer(m, "boxes_per_cell", "model.", 1, 64);
        if (boxes != f.boxes_per_cell())
            r.fail("model.boxes_per_cell", std::to_string(boxes) + " disagrees with the " +
                                               std::to_string(f.boxes_per_cell()) + " anchors");
        const auto& enc = r.get(m, "box_encoding", "model.");
        const nlohmann::json expected_encoding = {"tx", "ty", "tw", "th", "to"};
        if (enc != expected_encoding)
            r.fail("model.box_encoding", "expected [\"tx\",\"ty\",\"tw\",\"th\",\"to\"] (the only encoding this build "
                                         "decodes), found " + brief_json(enc));
        f.box_encoding = {"tx", "ty", "tw", "th", "to"};
        f.score_threshold = r.number_in(m, "score_threshold", "model.", 0.0, 1.0);
        f.iou_threshold = r.number_in(m, "iou_threshold", "model.", 0.0, 1.0);
    } else {
        if (a.input_h != 112 || a.input_w != 112)
            r.fail("model.input_size", "expected [112, 112] (the network's fc layer needs a 1x1 map after its 7x7 pool), "
                                       "found [" + std::to_string(a.input_h) + ", " + std::to_string(a.input_w) + "]");
        f.crop = r.choice(m, "crop", "model.", {landmarks ? "detection_box" : "aligned_rect"});
        if (landmarks) f.points = r.integer(m, "points", "model.", 68, 68);
    }
    if (doc.contains("heads"))
        r.fail("heads", "not used by family \"" + fam + "\" (its outputs are described by \"outputs\")");

    // outputs: exactly the family's, each with its fixed meaning.
    const auto& outs = r.get(doc, "outputs", "");
    const std::vector<std::string> names = detector    ? std::vector<std::string>{"grid"}
                                           : landmarks ? std::vector<std::string>{"landmarks"}
                                                       : std::vector<std::string>{"age", "gender"};
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    if (!outs.is_array() || outs.size() != names.size())
        r.fail("outputs", "expected " + std::to_string(names.size()) + " output(s) (" + list + "), found " + brief_json(outs));
    for (size_t i = 0; i < outs.size(); ++i) {
        const std::string p = "outputs[" + std::to_string(i) + "].";
        const auto& o = outs[i];
        if (!o.is_object()) r.fail("outputs[" + std::to_string(i) + "]", "expected an object, found " + brief_json(o));
        r.known_keys(o, p, {"name", "type", "unit", "meaning", "weight", "bias", "classes", "shape"});
        OutputConfig oc;
        oc.name = r.choice(o, "name", p, {names[i]});
        for (const char* key : {"type", "unit", "meaning", "weight", "bias"})
            if (o.contains(key)) {
                std::string v = r.string(o, key, p);
                (std::string(key) == "type"     ? oc.type
                 : std::string(key) == "unit"   ? oc.unit
                 : std::string(key) == "meaning" ? oc.meaning
                 : std::string(key) == "weight" ? oc.weight
                                                : oc.bias) = std::move(v);
            }
        if (o.contains("shape")) {
            const auto& sh = o["shape"];
            if (!sh.is_array() || sh.empty() || sh.size() > 4)
                r.fail(p + "shape", "expected 1..4 dimensions, found " + brief_json(sh));
            for (const auto& d : sh) {
                long long n = 0;
                if (d.is_string() && d.get<std::string>().size() <= 16) oc.shape.push_back(d.get<std::string>());
                else if (json_integer_in(d, 1, 1 << 20, n)) oc.shape.push_back(std::to_string(n));
                else r.fail(p + "shape", "expected dimensions (positive integers or short strings), found " + brief_json(sh));
            }
        }
        if (o.contains("classes")) {
            const auto& cl = o["classes"];
            if (!cl.is_array() || cl.size() > 16) r.fail(p + "classes", "expected an array of names, found " + brief_json(cl));
            for (const auto& c : cl) {
                if (!c.is_string()) r.fail(p + "classes", "expected strings, found " + brief_json(c));
                oc.classes.push_back(c.get<std::string>());
            }
        }
        // What the C++ networks compute is fixed per output: the file must agree.
        if (oc.name == "landmarks" && !oc.shape.empty() && oc.shape != std::vector<std::string>{std::to_string(2 * f.points)})
            r.fail(p + "shape", "expected [" + std::to_string(2 * f.points) + "] (x, y per point)");
        if (oc.name == "age") {
            if (oc.type != "regression") r.fail(p + "type", "expected \"regression\", found \"" + oc.type + "\"");
            if ((!oc.weight.empty() && oc.weight != "fc/age/weights") || (!oc.bias.empty() && oc.bias != "fc/age/bias"))
                r.fail(p + "weight", "the age output is fc/age/weights and fc/age/bias");
        }
        if (oc.name == "gender") {
            if (oc.type != "softmax") r.fail(p + "type", "expected \"softmax\", found \"" + oc.type + "\"");
            if (oc.classes != std::vector<std::string>{"male", "female"})
                r.fail(p + "classes", "expected [\"male\", \"female\"] (face-api's index 0 is male), found " +
                                          brief_json(o.contains("classes") ? o["classes"] : nlohmann::json()));
            if ((!oc.weight.empty() && oc.weight != "fc/gender/weights") ||
                (!oc.bias.empty() && oc.bias != "fc/gender/bias"))
                r.fail(p + "weight", "the gender output is fc/gender/weights and fc/gender/bias");
        }
        cfg.outputs.push_back(std::move(oc));
    }
    if (doc.contains("origin")) {
        const auto& o = doc["origin"];
        if (!o.is_object()) r.fail("origin", "expected an object, found " + brief_json(o));
        for (const char* key : {"package", "version", "license", "copyright", "homepage", "decoding"})
            if (o.contains(key)) r.string(o, key, "origin.");
        cfg.origin = o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
}

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
    cfg.family = r.string(m, "family", "model.");
    if (cfg.family == kFamilyResNet)
        detail::parse_resnet_config(r, doc, m, cfg);
    else if (cfg.is_faceapi())
        detail::parse_faceapi_config(r, doc, m, cfg);
    else
        r.fail("model.family", "unknown architecture \"" + cfg.family + "\" (this build knows: resnet, " +
                                   kFamilyFaceDetector + ", " + kFamilyFaceLandmarks + ", " + kFamilyFaceAgeGender + ")");
    const ArchConfig& a = cfg.arch;

    cfg.preprocess = parse_preprocess(r.get(doc, "preprocess", ""), file + ": metadata");  // throws ModelFileError
    const PreprocessSpec& pre = cfg.preprocess;
    if (cfg.is_faceapi() && !pre.float_chain())
        r.fail("preprocess", "family \"" + cfg.family + "\" takes face-api's float chain (to_float, pad_to_square, "
                             "resize tf_bilinear, normalize); this one starts with " +
                             preprocess_op_name(pre.steps.front().op));
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
    if (doc.contains("face_crop")) {
        if (cfg.family != kFamilyResNet)
            r.fail("face_crop", "only a resnet declares a face crop (family \"" + cfg.family + "\" has its own crops)");
        cfg.face_crop = parse_face_crop(doc.at("face_crop"), file);
    }
    return cfg;
}

/// Serialise a ModelConfig as the metadata document (used by tools that write files).
inline std::string model_config_to_json(const ModelConfig& cfg) {
    const ArchConfig& a = cfg.arch;
    if (cfg.is_faceapi()) {
        const FaceApiConfig& f = cfg.faceapi;
        nlohmann::json m = {{"family", cfg.family},
                            {"tensor_layout", cfg.tensor_layout},
                            {"input_size", {a.input_h, a.input_w}},
                            {"in_channels", a.in_channels}};
        if (cfg.family == kFamilyFaceDetector) {
            m["input_multiple"] = f.input_multiple;
            m["leaky_relu_alpha"] = shortest_decimal(f.leaky_alpha);
            m["anchors"] = nlohmann::json::array();
            for (const auto& an : f.anchors) m["anchors"].push_back({an[0], an[1]});
            m["boxes_per_cell"] = f.boxes_per_cell();
            m["box_encoding"] = f.box_encoding;
            m["score_threshold"] = f.score_threshold;
            m["iou_threshold"] = f.iou_threshold;
        } else {
            m["crop"] = f.crop;
            if (cfg.family == kFamilyFaceLandmarks) m["points"] = f.points;
        }
        nlohmann::json outs = nlohmann::json::array();
        for (const auto& o : cfg.outputs) {
            nlohmann::json j = {{"name", o.name}};
            if (!o.type.empty()) j["type"] = o.type;
            if (!o.unit.empty()) j["unit"] = o.unit;
            if (!o.weight.empty()) j["weight"] = o.weight;
            if (!o.bias.empty()) j["bias"] = o.bias;
            if (!o.classes.empty()) j["classes"] = o.classes;
            if (!o.shape.empty()) {
                j["shape"] = nlohmann::json::array();
                for (const auto& d : o.shape) {
                    // A dimension read as an integer (1..2^20) goes back as one; anything
                    // else ("S/32", "0", "007") stays the string it was.
                    const bool digits = !d.empty() && d.size() < 8 &&
                                        std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
                    const int v = digits ? std::stoi(d) : 0;
                    if (digits && v >= 1 && v <= (1 << 20) && std::to_string(v) == d) j["shape"].push_back(v);
                    else j["shape"].push_back(d);
                }
            }
            if (!o.meaning.empty()) j["meaning"] = o.meaning;
            outs.push_back(j);
        }
        nlohmann::json doc = {{"format_version", kFormatVersion}, {"model", m}, {"outputs", outs},
                              {"preprocess", preprocess_to_json(cfg.preprocess)}, {"trained", cfg.trained}};
        if (!cfg.description.empty()) doc["description"] = cfg.description;
        if (!cfg.source.empty()) doc["source"] = cfg.source;
        if (!cfg.origin.empty()) doc["origin"] = nlohmann::json::parse(cfg.origin);
        return doc.dump();
    }
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
    if (cfg.face_crop) doc["face_crop"] = face_crop_to_json(*cfg.face_crop);
    return doc.dump();
}

}  // namespace softbio
