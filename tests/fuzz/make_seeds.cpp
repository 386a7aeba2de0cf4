// tests/fuzz/make_seeds.cpp — writes the committed seed corpora of the model-file fuzz
// targets (tests/fuzz/corpus/model and tests/fuzz/corpus/safetensors). Built with the
// fuzzers (target softbio_fuzz_make_seeds); run it by hand when the format changes:
//
//     build/tests/fuzz/clang/softbio_fuzz_make_seeds tests/fuzz/corpus
//
// corpus/model: three tiny but complete softbio model files (ResNets of width 1 at
// 32-64 px, 12-25 KB each, most of it the JSON header) covering both block types, both
// pools, every head type and every preprocessing step.
// corpus/safetensors: plain safetensors containers the model files do not show: no
// tensors, other dtypes, an unaligned tensor, a zero-element tensor, non-softbio metadata.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <softbio/io/synthetic.hpp>

using namespace softbio;

namespace {

HeadConfig head(const std::string& name, HeadType type, int k) {
    HeadConfig h;
    h.name = name, h.type = type, h.num_classes = k;
    if (!h.ordinal())
        for (int c = 0; c < k; ++c) h.classes.push_back("class" + std::to_string(c));
    return h;
}

// A safetensors file from a header text and raw data bytes.
void write_raw(const std::string& path, const std::string& header, const std::vector<uint8_t>& data) {
    std::ofstream out(path, std::ios::binary);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t((uint64_t(header.size()) >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    if (!out) throw ModelFileError(path + ": write failed");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: softbio_fuzz_make_seeds CORPUS_DIR   (writes CORPUS_DIR/model/*, CORPUS_DIR/safetensors/*)\n");
        return 2;
    }
    const std::string dir = argv[1];
    using Step = PreprocessStep;
    try {
        // 1. Basic blocks, adaptive pool, softmax + CORAL heads, torchvision's Resize(36) ->
        //    CenterCrop(32) -> ToTensor -> Normalize.
        ModelConfig a;
        a.arch.block = BlockType::Basic, a.arch.layers = {1, 1, 1, 1}, a.arch.stride_in = StrideIn::Conv1;
        a.arch.base_width = 1, a.arch.input_h = a.arch.input_w = 32;
        HeadConfig gender = head("gender", HeadType::Softmax, 2);
        gender.classes = {"female", "male"};
        HeadConfig age = head("age", HeadType::Coral, 26);
        age.has_offset = true, age.label_offset = 15;
        a.heads = {gender, age};
        a.preprocess = {{Step::resize_shorter(36), Step::center_crop(32, 32), Step::to_tensor(),
                         Step::normalize({0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f})}};
        a.description = "fuzz seed: basic, adaptive pool";
        write_synthetic_model(dir + "/model/basic_adaptive.safetensors", a);

        // 2. Bottleneck blocks (stride in conv2), AvgPool2d(2, 2), CORN, OR-CNN and logits heads.
        ModelConfig b;
        b.arch.block = BlockType::Bottleneck, b.arch.layers = {1, 1, 1, 1}, b.arch.stride_in = StrideIn::Conv2;
        b.arch.base_width = 1, b.arch.input_h = b.arch.input_w = 64;
        b.arch.pool.type = PoolConfig::Type::Avg, b.arch.pool.kernel = 2, b.arch.pool.stride = 2, b.arch.pool.padding = 0;
        HeadConfig corn = head("corn", HeadType::Corn, 5);
        corn.has_offset = true, corn.label_offset = 1;
        b.heads = {corn, head("orcnn", HeadType::OrCnn, 4), head("scores", HeadType::Logits, 3)};
        b.preprocess = {{Step::center_crop(72, 72), Step::resize(64, 64), Step::to_tensor()}};
        b.source = "tests/fuzz/make_seeds.cpp";
        write_synthetic_model(dir + "/model/bottleneck_avgpool.safetensors", b);

        // 3. One input channel, a non-square input, AvgPool2d(3, 1, 1) over a 1x2 map.
        ModelConfig c;
        c.arch.block = BlockType::Basic, c.arch.layers = {1, 1, 1, 1}, c.arch.stride_in = StrideIn::Conv1;
        c.arch.in_channels = 1, c.arch.base_width = 1, c.arch.input_h = 32, c.arch.input_w = 48;
        c.arch.pool.type = PoolConfig::Type::Avg, c.arch.pool.kernel = 3, c.arch.pool.stride = 1, c.arch.pool.padding = 1;
        c.heads = {head("digit", HeadType::Softmax, 10)};
        c.preprocess = {{Step::resize(40, 56), Step::center_crop(32, 48), Step::to_tensor()}};
        write_synthetic_model(dir + "/model/gray_nonsquare.safetensors", c);

        // Plain containers.
        write_raw(dir + "/safetensors/empty.safetensors", "{}", {});
        write_raw(dir + "/safetensors/metadata_only.safetensors", R"({"__metadata__":{"format":"pt","softbio":"{}"}})", {});
        // F16 [2,2] at 0..8, I64 [1] at 8..16, BOOL [3] at 16..19, U8 [0,5] at 19..19.
        std::vector<uint8_t> data(19);
        for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i * 37 + 1);
        write_raw(dir + "/safetensors/dtypes.safetensors",
                  R"({"h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
                  R"("b":{"dtype":"BOOL","shape":[3],"data_offsets":[16,19]},"z":{"dtype":"U8","shape":[0,5],"data_offsets":[19,19]}})",
                  data);
        // An F32 tensor starting 2 bytes into the data section (unaligned: copied by the loader).
        std::vector<uint8_t> unaligned(2 + 12, 0);
        write_raw(dir + "/safetensors/unaligned.safetensors",
                  R"({"pad":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"w":{"dtype":"F32","shape":[3],"data_offsets":[2,14]}})",
                  unaligned);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio_fuzz_make_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}
