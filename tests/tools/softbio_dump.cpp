// softbio-dump — run a model on a preprocessed input tensor and write the outputs of
// the stem, each stage, the features and every head as .npy files, in PyTorch's NCHW
// convention, for comparison with PyTorch (tests/python/test_parity.py,
// weights_converter/compare.py).
//
//   softbio-dump --model M.safetensors --input X.npy --out DIR [--unfused] [--threads T]
//                [--precision fp32|bf16]
//
// X.npy: float32 [N, C, H, W], the tensor PyTorch's model receives.
// DIR/stem.npy (after maxpool), layer1..4.npy: [N, C, H, W]; features.npy: [N, F];
// head.<name>.logits.npy: [N, logits]; head.<name>.label.npy: [N] (decoded label).
#include <softbio/io/dump.hpp>
#include <softbio/io/npy.hpp>
#include <softbio/softbio.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

int usage() {
    std::fprintf(stderr, "usage: softbio-dump --model M.safetensors --input X.npy --out DIR [--unfused] [--threads T] "
                         "[--precision fp32|bf16]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_path, input_path, out_dir;
    softbio::LoadOptions opt;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--model") model_path = next();
        else if (a == "--input") input_path = next();
        else if (a == "--out") out_dir = next();
        else if (a == "--unfused") opt.fold_batchnorm = false;
        else if (a == "--threads") softbio::set_num_threads(std::stoi(next()));
        else if (a == "--precision") {
            try {
                opt.precision = softbio::parse_precision(next());
            } catch (const softbio::Error& e) {
                std::fprintf(stderr, "softbio-dump: %s\n", e.what());
                return 2;
            }
        } else return usage();
    }
    if (model_path.empty() || input_path.empty() || out_dir.empty()) return usage();
    try {
        softbio::require_precision(softbio::Device::Cpu, opt.precision);
    } catch (const softbio::PrecisionUnavailable& e) {  // not this machine's: a skip for the caller
        std::fprintf(stderr, "softbio-dump: %s\n", e.what());
        return 77;
    }
    try {
        auto model = softbio::load_model(model_path, opt);
        const auto x = softbio::npy::read_f32(input_path);
        if (x.shape.size() != 4 || x.shape[1] != model->arch().in_channels)
            throw softbio::ShapeError(input_path + ": expected [N, " + std::to_string(model->arch().in_channels) +
                                      ", H, W], found " + softbio::shape_string(x.shape));
        const int n = int(x.shape[0]), c = int(x.shape[1]), h = int(x.shape[2]), w = int(x.shape[3]);
        auto ws = model->make_workspace(n, h, w);
        float* in = ws->input();
        for (int b = 0; b < n; ++b)
            for (int ch = 0; ch < c; ++ch)
                for (int y = 0; y < h; ++y)
                    for (int xx = 0; xx < w; ++xx)
                        in[((size_t(b) * h + y) * w + xx) * c + ch] = x.data[((size_t(b) * c + ch) * h + y) * w + xx];
        softbio::LayerObserver obs = [&](const softbio::LayerEvent& e) {
            if (e.name == "maxpool") softbio::write_npy_nchw(out_dir + "/stem.npy", e, false);
            else if (std::strcmp(e.kind, "stage") == 0) softbio::write_npy_nchw(out_dir + "/" + e.name + ".npy", e, false);
            else if (e.name == "features") softbio::write_npy_nchw(out_dir + "/features.npy", e);
            else if (std::strcmp(e.kind, "head") == 0) softbio::write_npy_nchw(out_dir + "/" + e.name + ".logits.npy", e);
        };
        model->forward(in, n, *ws, &obs);
        std::vector<std::vector<softbio::HeadOutput>> out;
        model->decode(*ws, n, out);
        for (size_t i = 0; i < model->heads().size(); ++i) {
            std::vector<float> labels;
            for (int b = 0; b < n; ++b) labels.push_back(float(out[size_t(b)][i].label));
            softbio::npy::write_f32(out_dir + "/head." + model->heads()[i].config().name + ".label.npy", labels.data(), {n});
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio-dump: %s\n", e.what());
        return 1;
    }
    return 0;
}
