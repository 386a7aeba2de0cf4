// softbio-make-model — write an UNTRAINED model file with deterministic random weights
// for one of the published layouts (softbio/model/presets.hpp). No trained gender/age
// ResNet-101 checkpoint can be downloaded, so the demo and the benchmarks use these;
// the file says "trained": false and softbio-predict prints a banner for it.
//
//   softbio-make-model --preset flagship --out flagship.safetensors [--seed 1] [--face-crop celeba]
//   softbio-make-model --list
//
// --face-crop NAME declares how the model's faces are cut (celeba or cacd; metadata
// face_crop, docs/FORMAT.md 2.7): softbio-predict then runs it on detected faces.
#include <softbio/model/presets.hpp>
#include <softbio/io/synthetic.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    std::string preset = "flagship", out, face_crop;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--list") {
            for (const auto& n : softbio::preset_names()) std::printf("%s\n", n.c_str());
            return 0;
        } else if (a == "--preset" && i + 1 < argc) preset = argv[++i];
        else if (a == "--out" && i + 1 < argc) out = argv[++i];
        else if (a == "--seed" && i + 1 < argc) seed = std::stoull(argv[++i]);
        else if (a == "--face-crop" && i + 1 < argc) face_crop = argv[++i];
        else {
            std::fprintf(stderr, "usage: softbio-make-model --preset NAME --out FILE [--seed N] [--face-crop celeba|cacd] | --list\n");
            return 2;
        }
    }
    if (out.empty()) {
        std::fprintf(stderr, "softbio-make-model: --out FILE is required\n");
        return 2;
    }
    try {
        softbio::ModelConfig cfg = softbio::preset_config(preset);
        cfg.source = "softbio-make-model --preset " + preset + " --seed " + std::to_string(seed) + " (UNTRAINED random weights)";
        if (!face_crop.empty()) cfg.face_crop = softbio::named_face_crop(face_crop);
        softbio::SyntheticOptions opt;
        opt.seed = seed;
        softbio::write_synthetic_model(out, cfg, opt);
        std::printf("wrote %s: %s, untrained (seed %llu)\n", out.c_str(), cfg.description.c_str(), seed);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio-make-model: %s\n", e.what());
        return 1;
    }
    return 0;
}
