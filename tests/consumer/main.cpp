// A program outside the softbio tree: writes a tiny synthetic model, loads it through
// the public API, runs one image and prints the decoded heads.
#include <softbio/io/synthetic.hpp>
#include <softbio/softbio.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
    const std::string path = argc > 1 ? argv[1] : "consumer_model.safetensors";
    softbio::ModelConfig cfg;
    cfg.arch.block = softbio::BlockType::Basic;
    cfg.arch.layers = {1, 1, 1, 1};
    cfg.arch.stride_in = softbio::StrideIn::Conv1;
    cfg.arch.input_h = cfg.arch.input_w = 64;
    softbio::HeadConfig h;
    h.name = "gender", h.type = softbio::HeadType::Softmax, h.classes = {"female", "male"}, h.num_classes = 2;
    cfg.heads = {h};
    cfg.preprocess.steps = {softbio::PreprocessStep::resize(64, 64), softbio::PreprocessStep::to_tensor()};
    softbio::write_synthetic_model(path, cfg);
    auto model = softbio::load_model(path);
    auto ws = model->make_workspace(1);
    std::vector<float> image(64 * 64 * 3, 0.5f);
    model->forward(image.data(), 1, *ws);
    std::vector<std::vector<softbio::HeadOutput>> out;
    model->decode(*ws, 1, out);
    std::printf("consumer ok: %s = %s (p = %.3f)\n", out[0][0].name.c_str(), out[0][0].class_name.c_str(),
                out[0][0].confidence());
    return 0;
}
