// tests/fuzz/fuzz_model_load.cpp — libFuzzer target: a whole model load from file bytes.
//
// The input is a model file. softbio::load_model (open_model_file: container, metadata,
// the tensor list the network's description asks for; then the ResNet built from it,
// BatchNorm folded or not) must either refuse it with a ModelFileError or return a model.
// A returned model whose input is small (the seeds are 32x32 networks of width 1-2) then
// runs one forward pass with one thread and decodes every head: that must not throw at all
// (the loader accepted the file, so the network must run), and a head whose logits are
// all finite must say so. Anything else escaping is reported by libFuzzer as a crash;
// AddressSanitizer and UndefinedBehaviorSanitizer watch the rest.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <softbio/softbio.hpp>

#include "fuzz_util.hpp"

namespace {

// Larger networks are loaded but not run: a file may declare an input of up to
// 4096x4096 without changing a single weight (adaptive pooling), and one pass over that
// would take seconds under the sanitizers.
constexpr long long kMaxRunPixels = 64 * 64;
constexpr long long kMaxRunParameters = 200000;

void run_once(const softbio::ResNet<softbio::CpuBackend>& model) {
    const auto& a = model.arch();
    if (static_cast<long long>(a.input_h) * a.input_w > kMaxRunPixels || model.parameter_count() > kMaxRunParameters)
        return;
    auto ws = model.make_workspace(1, 0, 0, 1);
    const size_t n = size_t(a.input_h) * size_t(a.input_w) * size_t(a.in_channels);
    float* in = ws->input();
    for (size_t i = 0; i < n; ++i) in[i] = float(int(i % 17) - 8) / 8.0f;
    model.forward(in, 1, *ws);
    std::vector<std::vector<softbio::HeadOutput>> out;
    model.decode(*ws, 1, out);
    SOFTBIO_FUZZ_CHECK(out.size() == 1 && out[0].size() == model.config().heads.size());
    for (size_t h = 0; h < out[0].size(); ++h) {
        const softbio::HeadOutput& o = out[0][h];
        bool finite = true;
        for (float z : o.logits) finite = finite && std::isfinite(z);
        SOFTBIO_FUZZ_CHECK(o.finite == finite);
        SOFTBIO_FUZZ_CHECK(int(o.logits.size()) == model.config().heads[h].logits());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static softbio_fuzz::MemFile file;
    const std::string& path = file.write(data, size);
    softbio::LoadOptions opt;
    opt.fold_batchnorm = size % 2 == 0;  // both ways of building the layers, cheaply
    std::shared_ptr<const softbio::ResNet<softbio::CpuBackend>> model;
    try {
        model = softbio::load_model(path, opt);
    } catch (const softbio::ModelFileError&) {
        return 0;
    }
    SOFTBIO_FUZZ_CHECK(model != nullptr);
    run_once(*model);
    return 0;
}
