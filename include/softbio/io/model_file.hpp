// softbio/io/model_file.hpp — open a softbio model file and check it completely.
//
// open_model_file() reads the safetensors container (io/safetensors.hpp), parses the
// metadata document of docs/FORMAT.md into a ModelConfig (io/metadata.hpp), asks the
// network's description (model/networks.hpp) for the exact list of tensors it needs,
// and checks the file against it: nothing missing, nothing extra, every shape and dtype
// right. Any problem is one ModelFileError naming the file and, where there is one, the
// tensor or metadata key. Only a structurally valid file yields a ModelFile.
//
// Tensor values are not read here: the file stays mapped and untouched until a network
// takes a tensor (ModelFile::tensor), which checks that its values are finite then, in
// the same pass that packs it. Loading therefore reads each weight once.
#pragma once

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/finite.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/io/metadata.hpp"
#include "softbio/io/safetensors.hpp"
#include "softbio/model/network.hpp"
#include "softbio/model/networks.hpp"

namespace softbio {

/// A structurally validated model file: its configuration and its tensors, by name.
class ModelFile : public WeightSource {
public:
    const std::string& path() const { return path_; }
    const ModelConfig& config() const { return config_; }
    /// The tensor `name` (validated to exist with the expected shape), fp32 data.
    /// Throws ModelFileError when it is unknown or holds a NaN or infinity.
    const TensorRef& tensor(const std::string& name) const override {
        auto it = tensors_.find(name);
        if (it == tensors_.end()) throw ModelFileError(path_ + ": tensor " + name + " is missing");
        const TensorRef& ref = it->second;
        const size_t bad = first_non_finite(ref.data, ref.numel());  // vectorized (core/finite.hpp)
        if (bad != ref.numel())
            throw ModelFileError(path_ + ": tensor " + name + " holds a non-finite value (NaN or Inf) at index " +
                                 std::to_string(bad));
        return ref;
    }
    /// A zero-copy tensor's pages leave the resident set (MappedFile::release).
    void release(const std::string& name) const override {
        auto it = tensors_.find(name);
        if (it == tensors_.end() || !mapping_) return;
        const TensorRef& ref = it->second;
        const auto* p = reinterpret_cast<const uint8_t*>(ref.data);
        if (p >= mapping_->data() && p < mapping_->data() + mapping_->size())
            mapping_->release(p, ref.numel() * sizeof(float));
    }

private:
    friend ModelFile open_model_file(const std::string& path);
    std::string path_;
    ModelConfig config_;
    std::shared_ptr<const MappedFile> mapping_;  // keeps zero-copy tensors alive
    std::vector<std::vector<float>> copies_;     // unaligned tensors, copied once
    std::map<std::string, TensorRef> tensors_;
};

/// Open, parse and structurally validate a softbio model file (docs/FORMAT.md).
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

    const std::vector<TensorSpec> expected = describe_network(mf.config_).tensors();
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
        mf.tensors_[e.name] = std::move(ref);
    }
    return mf;
}

}  // namespace softbio
