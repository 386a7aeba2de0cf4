// face_dump — softbio's face pipeline (include/softbio/face/pipeline.hpp) on one image,
// printed as the same JSON document tests/face/reference/reference.js prints for the
// original, so that tests/python/test_face_parity.py can compare them field by field.
//
//   face_dump --models DIR (--rgb FILE --width W --height H | --image FILE)
//             [--input-size S] [--score-threshold T] [--time N] [--threads N]
//
// --rgb reads raw RGB bytes (H x W x 3, row-major: the pixels reference.js decoded), so
// both sides see identical pixels. --time N runs the whole chain N more times and adds
// the median milliseconds ("ms", decoding excluded); with --image also the median time of
// decoding the file ("decode_ms"). Exit status 0, or 1 with a message.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "softbio/face/pipeline.hpp"

int main(int argc, char** argv) {
    std::string models, rgb, image;
    int width = 0, height = 0, runs = 0;
    softbio::face::PipelineOptions opt;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc) throw softbio::Error(a + " needs a value");
                return argv[++i];
            };
            if (a == "--models") models = value();
            else if (a == "--rgb") rgb = value();
            else if (a == "--image") image = value();
            else if (a == "--width") width = std::stoi(value());
            else if (a == "--height") height = std::stoi(value());
            else if (a == "--input-size") opt.detector_size = std::stoi(value());
            else if (a == "--score-threshold") opt.score_threshold = std::stod(value());
            else if (a == "--time") runs = std::stoi(value());
            else if (a == "--threads") opt.threads = std::stoi(value());
            else throw softbio::Error("unknown option " + a);
        }
        if (models.empty() || (rgb.empty() == image.empty()))
            throw softbio::Error("usage: face_dump --models DIR (--rgb FILE --width W --height H | --image FILE) "
                                 "[--input-size S] [--score-threshold T] [--time N] [--threads N]");
        softbio::RgbImage img;
        if (!image.empty()) {
            img = softbio::load_rgb_image(image);
        } else {
            std::ifstream f(rgb, std::ios::binary);
            if (!f) throw softbio::Error(rgb + ": cannot open");
            img.pixels.assign(std::istreambuf_iterator<char>(f), {});
            img.width = width, img.height = height;
            if (width < 1 || height < 1 || img.pixels.size() != size_t(width) * size_t(height) * 3)
                throw softbio::Error(rgb + ": " + std::to_string(img.pixels.size()) + " bytes, expected " + std::to_string(width) +
                                     " x " + std::to_string(height) + " x 3");
        }
        const auto pipeline = softbio::face::FacePipeline::load(models);
        auto ws = pipeline.make_workspace(opt);
        const auto& faces = pipeline.analyze(img, *ws);
        nlohmann::json doc;
        doc["image"] = {{"width", img.width}, {"height", img.height}};
        doc["options"] = {{"inputSize", ws->detector_size()}};
        doc["faces"] = nlohmann::json::array();
        auto rect = [](const softbio::face::Box& b) {
            return nlohmann::json{{"x", b.x}, {"y", b.y}, {"width", b.width}, {"height", b.height}};
        };
        for (const auto& f : faces) {
            nlohmann::json lm = nlohmann::json::array();
            for (const auto& p : f.landmarks) lm.push_back({p.x, p.y});
            doc["faces"].push_back({{"box", rect(f.detection.box)},
                                    {"score", f.detection.score},
                                    {"landmarks", lm},
                                    {"aligned_rect", rect(f.aligned_rect)},
                                    {"age", f.age},
                                    {"gender", f.male() ? "male" : "female"},
                                    {"genderProbability", f.gender_probability()}});
        }
        if (runs > 0 && !image.empty()) {  // decoding alone, as softbio-predict does it
            std::vector<double> ms;
            for (int r = 0; r < runs; ++r) {
                const auto t0 = std::chrono::steady_clock::now();
                softbio::RgbImage again = softbio::load_rgb_image(image);
                ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            std::sort(ms.begin(), ms.end());
            doc["decode_ms"] = ms[ms.size() / 2];
        }
        if (runs > 0) {
            std::vector<double> ms;
            for (int r = 0; r < runs; ++r) {
                const auto t0 = std::chrono::steady_clock::now();
                pipeline.analyze(img, *ws);
                ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            std::sort(ms.begin(), ms.end());
            doc["ms"] = ms[ms.size() / 2];
        }
        std::printf("%s\n", doc.dump().c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "face_dump: %s\n", e.what());
        return 1;
    }
}
