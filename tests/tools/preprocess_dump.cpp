// preprocess_dump — decode an image and run a preprocessing chain on it, writing the
// tensor as a float32 .npy in torchvision's layout [1, 3, H, W], so that it compares
// directly with `transforms.Compose([...])(Image.open(IMAGE).convert("RGB"))`.
//
//   preprocess_dump IMAGE OUT.npy --steps '<JSON array of steps>' [--repeat N] [--describe]
//   preprocess_dump IMAGE OUT.npy --preset NAME [--repeat N] [--describe]
//
// The steps are those of docs/FORMAT.md 2.4, e.g.
//   '[{"op":"center_crop","size":[178,178]},{"op":"resize","size":[128,128]},{"op":"to_tensor"}]'
// '[{"op":"to_tensor"}]' dumps the decoded image itself (decoder parity).
// --preset NAME runs the chain of softbio::preset_config(NAME) (model/presets.hpp, e.g.
// torchvision-r50) instead, to compare it with the transform its source publishes.
// --repeat N runs the chain N times with one workspace and checks that every run gives
// the same bytes (workspace reuse).
// --describe also prints one JSON line on stdout: what the typed chain says about sizes
// and how it writes itself back,
//   {"fixed_size": [output_height(), output_width()], "output_size": [h, w] for this image,
//    "steps": preprocess_to_json(spec)["steps"]}
// Exit status: 0 done, 1 the image or the chain was refused (message on stderr), 2 usage.
#include <softbio/image/decode.hpp>
#include <softbio/image/preprocess.hpp>
#include <softbio/io/preprocess_json.hpp>
#include <softbio/io/npy.hpp>
#include <softbio/model/presets.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int usage() {
    std::fprintf(stderr,
                 "usage: preprocess_dump IMAGE OUT.npy (--steps '<JSON array of steps>' | --preset NAME) [--repeat N] "
                 "[--describe]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string image_path, out_path, steps_json, preset;
    int repeat = 1;
    bool describe = false;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--steps" && i + 1 < argc) {
            steps_json = argv[++i];
        } else if (a == "--preset" && i + 1 < argc) {
            preset = argv[++i];
        } else if (a == "--describe") {
            describe = true;
        } else if (a == "--repeat" && i + 1 < argc) {
            repeat = std::atoi(argv[++i]);
        } else if (a.size() > 1 && a[0] == '-' && a[1] == '-') {
            return usage();
        } else {
            positional.push_back(a);
        }
    }
    if (positional.size() != 2 || steps_json.empty() == preset.empty() || repeat < 1) return usage();
    image_path = positional[0];
    out_path = positional[1];

    try {
        const softbio::PreprocessSpec spec =
            preset.empty() ? softbio::parse_preprocess({{"steps", nlohmann::json::parse(steps_json)}}, "--steps")
                           : softbio::preset_config(preset).preprocess;
        const softbio::RgbImage img = softbio::load_rgb_image(image_path);
        int oh = 0, ow = 0;
        spec.output_size(img.height, img.width, oh, ow);
        if (describe) {
            const nlohmann::json info = {{"fixed_size", {spec.output_height(), spec.output_width()}},
                                         {"output_size", {oh, ow}},
                                         {"steps", softbio::preprocess_to_json(spec)["steps"]}};
            std::printf("%s\n", info.dump().c_str());
        }
        const size_t count = size_t(oh) * size_t(ow) * 3;
        std::vector<float> hwc(count), first;
        softbio::PreprocessWorkspace ws;
        for (int r = 0; r < repeat; ++r) {
            std::fill(hwc.begin(), hwc.end(), -12345.0f);
            softbio::preprocess(img, spec, ws, hwc.data());
            if (r == 0) {
                first = hwc;
            } else if (std::memcmp(first.data(), hwc.data(), count * sizeof(float)) != 0) {
                std::fprintf(stderr, "preprocess_dump: run %d differs from run 1 (workspace reuse bug)\n", r + 1);
                return 1;
            }
        }
        std::vector<float> chw(count);
        for (int y = 0; y < oh; ++y)
            for (int x = 0; x < ow; ++x)
                for (int c = 0; c < 3; ++c)
                    chw[(size_t(c) * size_t(oh) + size_t(y)) * size_t(ow) + size_t(x)] = hwc[(size_t(y) * size_t(ow) + size_t(x)) * 3 + size_t(c)];
        softbio::npy::write_f32(out_path, chw.data(), {1, 3, oh, ow});
    } catch (const nlohmann::json::exception& e) {
        std::fprintf(stderr, "preprocess_dump: --steps is not valid JSON: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "preprocess_dump: %s\n", e.what());
        return 1;
    }
    return 0;
}
