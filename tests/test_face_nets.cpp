// tests/test_face_nets.cpp — face-api's three networks (model/faceapi_*.hpp) loaded from
// data/models/*.safetensors, against the original (tests/face/data: face-api 1.7.15 on
// tfjs-wasm 4.22, on data/astronaut.png; tests/face/data/README.md), and their
// preprocessing (image/preprocess.hpp, to_float / pad_to_square / resize tf_bilinear /
// normalize) against the reference's network inputs.
//
// TOLERANCE RULE (face-api networks vs the original): the engine and tfjs compute the
// same float32 network with different summation orders (GEMM blocking, depthwise tap
// order, the dense blocks' sums associated differently, leaky ReLU as one multiplication
// instead of relu(y - a y) + a y), so each output may differ by a few fp32 roundings,
// compounded over 8-18 layers. Each network's output is compared relative to its spread:
//     max |engine - reference| <= 1e-4 * spread,
//     spread = max - min of the reference values (the grid's 2500, the 136 landmarks,
//              the 2 gender logits); for a single value (age) its magnitude |age|.
// This is issue 10's rule; the numpy implementation meets it with 200x to spare
// (< 5e-7), and a wrong layer (stride, padding side, a missing relu, a swapped fc
// layout) moves outputs by a sizeable fraction of the spread, so the check can fail.
// Preprocessing has no tolerance: the inputs must equal the reference's bit for bit.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>

#include <softbio/image/decode.hpp>
#include <softbio/image/preprocess.hpp>
#include <softbio/io/load.hpp>
#include <softbio/io/load_face.hpp>
#include <softbio/io/npy.hpp>
#include <softbio/softbio.hpp>

#include "test_util.hpp"

using namespace softbio;

namespace {

const std::string kData = SOFTBIO_DATA_DIR;
const std::string kFaceData = kData + "/../tests/face/data/";
const std::string kDetector = kData + "/models/faceapi_tiny_face_detector.safetensors";
const std::string kLandmarks = kData + "/models/faceapi_landmark68.safetensors";
const std::string kAgeGender = kData + "/models/faceapi_age_gender.safetensors";

npy::FloatArray npy_file(const std::string& name) { return npy::read_f32(kFaceData + name + ".npy"); }

/// The rule above: max |got - ref| <= 1e-4 * spread.
void check_spread(const float* got, const std::vector<float>& ref, const std::string& what) {
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - double(ref[i])));
    if (std::isnan(worst)) worst = INFINITY;
    for (size_t i = 0; i < ref.size(); ++i)
        if (std::isnan(got[i])) worst = INFINITY;
    auto [lo, hi] = std::minmax_element(ref.begin(), ref.end());
    const double spread = ref.size() == 1 ? std::fabs(double(ref[0])) : double(*hi) - double(*lo);
    INFO(what << ": max|diff| = " << worst << ", spread = " << spread << ", ratio " << worst / spread);
    CHECK(spread > 0);
    CHECK(worst <= 1e-4 * spread);
}

/// The face's box from the reference's pipeline JSON, cut as face-api cuts it
/// (docs/FACE_MODELS.md §4): clip to the image, floor x, y, w, h.
struct Crop {
    int x = 0, y = 0, w = 0, h = 0;
};
Crop crop_of(const nlohmann::json& box, int width, int height) {
    const double bx = box["x"], by = box["y"], bw = box["width"], bh = box["height"];
    const double x0 = std::max(bx, 0.0), y0 = std::max(by, 0.0);
    const double cw = std::min(bx + bw - x0, width - x0), ch = std::min(by + bh - y0, height - y0);
    return {int(std::floor(x0)), int(std::floor(y0)), int(std::floor(cw)), int(std::floor(ch))};
}

nlohmann::json pipeline_json() {
    std::ifstream in(kFaceData + "astronaut_pipeline.json");
    REQUIRE(in);
    return nlohmann::json::parse(in);
}

/// The model's chain without its normalize step (the reference's dumps are pixel domain),
/// optionally with the resize to `size` instead.
PreprocessSpec pixel_chain(const ModelConfig& cfg, int size = 0) {
    PreprocessSpec spec;
    for (auto s : cfg.preprocess.steps) {
        if (s.op == PreprocessStep::Op::Normalize) continue;
        if (s.op == PreprocessStep::Op::Resize && size > 0) s.height = s.width = size;
        spec.steps.push_back(s);
    }
    return spec;
}

/// (x - mean) / std in float32, as the chain's normalize step: the network input of a
/// pixel-domain reference input.
std::vector<float> normalized(const ModelConfig& cfg, const std::vector<float>& pixels) {
    const PreprocessStep& n = cfg.preprocess.steps.back();
    REQUIRE(n.op == PreprocessStep::Op::Normalize);
    std::vector<float> out(pixels.size());
    for (size_t i = 0; i < pixels.size(); ++i) {
        const float d = pixels[i] - n.mean[i % 3];
        out[i] = d / n.std[i % 3];
    }
    return out;
}

void check_bit_exact(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
    REQUIRE(got.size() == want.size());
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < got.size(); ++i)
        if (std::memcmp(&got[i], &want[i], 4) != 0 && differ++ == 0) first = i;
    INFO(what << ": " << differ << " of " << got.size() << " values differ; first at " << first << ": " << got[first]
              << " vs " << want[first]);
    CHECK(differ == 0);
}

/// Run `spec` on the (x, y, w, h) region of `img` (a view: the image's row stride).
std::vector<float> run_chain(const RgbImage& img, const Crop& c, const PreprocessSpec& spec) {
    int oh = 0, ow = 0;
    spec.output_size(c.h, c.w, oh, ow);
    std::vector<float> out(size_t(oh) * ow * 3);
    PreprocessWorkspace ws;
    preprocess_pixels(img.at(c.y, c.x), c.h, c.w, size_t(img.width) * 3, spec, ws, out.data());
    return out;
}

/// A copy of `src` with tensors dropped/reshaped and the metadata document replaced.
std::string rewrite(const std::string& src, const std::string& name, const std::string& drop = "",
                    const std::string& reshape = "", const std::string& metadata = "") {
    SafetensorsFile st(src);
    std::vector<TensorToWrite> out;
    for (const auto& [n, info] : st.tensors()) {
        if (n == drop) continue;
        TensorToWrite t{n, info.shape, reinterpret_cast<const float*>(st.bytes(info))};
        if (n == reshape) t.shape = {1, info.shape.back()};  // fewer values than the file holds
        out.push_back(t);
    }
    const std::string path = test::temp_path(name);
    write_safetensors(path, out, {{"softbio", metadata.empty() ? st.metadata().at("softbio") : metadata}});
    return path;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("face: the converted files load; metadata parsed, written back the same, trained") {
    for (const std::string& path : {kDetector, kLandmarks, kAgeGender}) {
        const ModelFile f = open_model_file(path);
        const ModelConfig& cfg = f.config();
        CAPTURE(path);
        CHECK(cfg.is_faceapi());
        CHECK(cfg.trained);  // no UNTRAINED banner for these
        CHECK(cfg.tensor_layout == "tfjs");
        CHECK(cfg.preprocess.float_chain());
        const std::string once = model_config_to_json(cfg);
        const std::string twice = model_config_to_json(parse_model_config(path, once));
        CHECK(once == twice);
        CHECK(cfg.origin.find("\"license\":\"MIT\"") != std::string::npos);
    }
    const ModelConfig det = open_model_file(kDetector).config();
    CHECK(det.arch.input_h == 416);
    CHECK(det.faceapi.input_multiple == 32);
    CHECK(det.faceapi.leaky_alpha == 0.1f);
    REQUIRE(det.faceapi.anchors.size() == 5);
    CHECK(det.faceapi.anchors[4][1] == 10.66308);
    CHECK(det.faceapi.score_threshold == 0.5);
    CHECK(det.faceapi.iou_threshold == 0.4);
    CHECK(det.outputs.at(0).name == "grid");
    const ModelConfig ag = open_model_file(kAgeGender).config();
    CHECK(ag.faceapi.crop == "aligned_rect");
    CHECK(ag.outputs.at(1).classes == std::vector<std::string>{"male", "female"});
    CHECK(open_model_file(kLandmarks).config().faceapi.points == 68);
    // Parameter counts of docs/FACE_MODELS.md §10.2.
    CHECK(describe_network(det).parameter_count() == 193321);
    CHECK(describe_network(open_model_file(kLandmarks).config()).parameter_count() == 356840);
    CHECK(describe_network(ag).parameter_count() == 421731);
}

TEST_CASE("face: preprocessing builds the reference's network inputs bit for bit") {
    const RgbImage img = load_rgb_image(kData + "/astronaut.png");
    REQUIRE(img.width == 512);
    const nlohmann::json face = pipeline_json()["faces"][0];
    SUBCASE("detector at 320: pad right/bottom (none: square), tf bilinear down") {
        const ModelConfig cfg = open_model_file(kDetector).config();
        const npy::FloatArray want = npy_file("astronaut_detector320_input");
        check_bit_exact(run_chain(img, {0, 0, 512, 512}, pixel_chain(cfg, 320)), want.data, "detector input");
        // With the normalize step: the network's input.
        PreprocessSpec full = cfg.preprocess;
        full.steps[2].height = full.steps[2].width = 320;
        check_bit_exact(run_chain(img, {0, 0, 512, 512}, full), normalized(cfg, want.data), "detector input, normalised");
    }
    SUBCASE("landmarks: the detection box's crop, padded centred, tf bilinear to 112") {
        const ModelConfig cfg = open_model_file(kLandmarks).config();
        const Crop c = crop_of(face["box"], img.width, img.height);
        CHECK(c.w != c.h);  // padding happens
        check_bit_exact(run_chain(img, c, pixel_chain(cfg)), npy_file("astronaut_face0_landmark68_input").data,
                        "landmark input");
    }
    SUBCASE("age/gender: the aligned rect's crop") {
        const ModelConfig cfg = open_model_file(kAgeGender).config();
        const Crop c = crop_of(face["aligned_rect"], img.width, img.height);
        check_bit_exact(run_chain(img, c, pixel_chain(cfg)), npy_file("astronaut_face0_age_gender_input").data,
                        "age/gender input");
    }
}

TEST_CASE("face: pad_to_square and tf_bilinear by hand (odd differences, upsampling, no-op resize)") {
    // A 2 x 5 image (h x w): centred padding of d = 3 puts round(1.5) = 2 rows below, 1 above.
    RgbImage img;
    img.width = 5, img.height = 2;
    for (int i = 0; i < 30; ++i) img.pixels.push_back(uint8_t(10 + i));
    PreprocessSpec centred;
    centred.steps = {PreprocessStep::to_float(), PreprocessStep::pad_to_square(PreprocessStep::Anchor::Center)};
    std::vector<float> out = run_chain(img, {0, 0, 5, 2}, centred);
    REQUIRE(out.size() == 5 * 5 * 3);
    for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 5; ++x) {
            const float want = (y == 1 || y == 2) ? float(10 + ((y - 1) * 5 + x) * 3) : 0.0f;
            CHECK(out[size_t(y * 5 + x) * 3] == want);
        }
    PreprocessSpec corner;
    corner.steps = {PreprocessStep::to_float(), PreprocessStep::pad_to_square(PreprocessStep::Anchor::TopLeft)};
    out = run_chain(img, {0, 0, 5, 2}, corner);
    CHECK(out[0] == 10.0f);
    CHECK(out[size_t(2 * 5) * 3] == 0.0f);
    // Upsampling 2 -> 5 along x: ratio 0.4, sources 0, .4, .8, 1.2, 1.6 with the upper
    // neighbour clamped to 1: out = a + (b - a) * f, the last two equal to b.
    RgbImage two;
    two.width = 2, two.height = 1;
    two.pixels = {0, 0, 0, 100, 100, 100};
    PreprocessSpec up;
    up.steps = {PreprocessStep::to_float(), PreprocessStep::resize_tf(1, 5)};
    out = run_chain(two, {0, 0, 2, 1}, up);
    const float ratio = 2.0f / 5.0f;
    CHECK(out[3] == 100.0f * (1.0f * ratio));
    CHECK(out[6] == 100.0f * (2.0f * ratio));
    CHECK(out[9] == 100.0f);
    CHECK(out[12] == 100.0f);
    // A resize to the size the image already has is skipped: the pixels come out as they are.
    up.steps[1] = PreprocessStep::resize_tf(1, 2);
    out = run_chain(two, {0, 0, 2, 1}, up);
    CHECK(out == std::vector<float>{0, 0, 0, 100, 100, 100});
}

TEST_CASE("face: tiny face detector vs face-api at 320 px; any multiple of 32") {
    auto det = load_network<FaceApiTinyFaceDetector<CpuBackend>>(kDetector);
    const npy::FloatArray in = npy_file("astronaut_detector320_input");
    const npy::FloatArray want = npy_file("astronaut_detector320_output");
    REQUIRE(want.shape == std::vector<int64_t>{1, 10, 10, 25});
    auto ws = det->make_workspace(1, 320, 2);
    const std::vector<float> x = normalized(det->config(), in.data);
    det->forward(x.data(), 1, *ws);
    CHECK(det->grid_size(*ws) == 10);
    check_spread(det->grid(*ws), want.data, "detector grid at 320");
    std::vector<float> chw(25 * 100);
    det->grid_chw(*ws, 0, chw.data());
    CHECK(chw[size_t(7) * 100 + 3 * 10 + 4] == det->grid(*ws)[(3 * 10 + 4) * 25 + 7]);
    // A second workspace, one shared model, a batch of two on another thread count: each
    // image within the rule (the GEMM's blocking may follow the batch), both the same bits.
    auto ws2 = det->make_workspace(2, 320, 1);
    std::vector<float> two(x);
    two.insert(two.end(), x.begin(), x.end());
    det->forward(two.data(), 2, *ws2);
    check_spread(det->grid(*ws2), want.data, "detector grid, batch 2, image 0");
    check_spread(det->grid(*ws2) + 2500, want.data, "detector grid, batch 2, image 1");
    CHECK(std::equal(det->grid(*ws2), det->grid(*ws2) + 2500, det->grid(*ws2) + 2500));
    // Other sizes: g = S / 32.
    for (int s : {32, 64, 416}) {
        auto w = det->make_workspace(1, s);
        std::fill(w->input(), w->input() + size_t(s) * s * 3, 0.25f);
        det->forward(w->input(), 1, *w);
        CHECK(det->grid_size(*w) == s / 32);
        const Shape out = w->unit_shape(det->description().units.size() - 1);
        CHECK(out == Shape{1, s / 32, s / 32, 25});
    }
    CHECK(error_of([&] { det->make_workspace(1, 100); }).find("not a positive multiple of 32") != std::string::npos);
}

TEST_CASE("face: 68-point landmark network vs face-api") {
    auto lm = load_face_landmarks(kLandmarks);
    const npy::FloatArray in = npy_file("astronaut_face0_landmark68_input");
    const npy::FloatArray want = npy_file("astronaut_face0_landmark68_output");
    REQUIRE(want.data.size() == 136);
    auto ws = lm->make_workspace(1);
    const std::vector<float> x = normalized(lm->config(), in.data);
    lm->forward(x.data(), 1, *ws);
    CHECK(lm->outputs_per_face() == 136);
    check_spread(lm->landmarks(*ws), want.data, "landmarks");
}

TEST_CASE("face: age/gender network vs face-api") {
    auto ag = load_face_age_gender(kAgeGender);
    const npy::FloatArray in = npy_file("astronaut_face0_age_gender_input");
    const npy::FloatArray age = npy_file("astronaut_face0_age_gender_age");
    const npy::FloatArray logits = npy_file("astronaut_face0_age_gender_gender_logits");
    auto ws = ag->make_workspace(2);
    const std::vector<float> x = normalized(ag->config(), in.data);
    ag->forward(x.data(), 1, *ws);
    check_spread(ag->ages(*ws), age.data, "age");
    check_spread(ag->gender_logits(*ws), logits.data, "gender logits");
    float p[2];
    ag->gender(*ws, 0, p);
    CHECK(p[0] + p[1] == doctest::Approx(1.0));
    const double zm = std::max(logits.data[0], logits.data[1]);
    const double want_male = std::exp(logits.data[0] - zm) / (std::exp(logits.data[0] - zm) + std::exp(logits.data[1] - zm));
    CHECK(p[0] == doctest::Approx(want_male).epsilon(1e-5));
    // The reference's whole chain says female, probability 0.816 (pipeline JSON).
    const nlohmann::json face = pipeline_json()["faces"][0];
    CHECK(face["gender"] == "female");
    CHECK(p[1] == doctest::Approx(double(face["genderProbability"])).epsilon(1e-4));
    CHECK(ag->age(*ws, 0) == doctest::Approx(double(face["age"])).epsilon(1e-4));
    CHECK(error_of([&] { ag->age(*ws, 1); }).find("outside the last batch") != std::string::npos);
}

TEST_CASE("face: the whole chain on the photo: preprocess + network = the reference's outputs") {
    // From the decoded PNG through the model's own preprocessing (no .npy input).
    const RgbImage img = load_rgb_image(kData + "/astronaut.png");
    const nlohmann::json face = pipeline_json()["faces"][0];
    auto ag = load_network<FaceApiAgeGender<CpuBackend>>(kAgeGender);
    auto ws = ag->make_workspace(1);
    const Crop c = crop_of(face["aligned_rect"], img.width, img.height);
    PreprocessWorkspace pws;
    preprocess_pixels(img.at(c.y, c.x), c.h, c.w, size_t(img.width) * 3, ag->config().preprocess, pws, ws->input());
    ag->forward(ws->input(), 1, *ws);
    check_spread(ag->ages(*ws), npy_file("astronaut_face0_age_gender_age").data, "age from the photo");
}

TEST_CASE("face: wrong family, missing tensor, wrong shape, bad metadata: clear errors") {
    // Each network class refuses the others' files, and the ResNet loader refuses them all.
    CHECK(error_of([] { load_network<FaceApiTinyFaceDetector<CpuBackend>>(kLandmarks); })
              .find("holds a \"faceapi_landmark68\" network, expected \"faceapi_tiny_face_detector\"") != std::string::npos);
    CHECK(error_of([] { load_network<FaceApiAgeGender<CpuBackend>>(kDetector); })
              .find("expected \"faceapi_age_gender\"") != std::string::npos);
    CHECK(error_of([] { load_face_detector(kAgeGender); })
              .find("holds a \"faceapi_age_gender\" network, expected \"faceapi_tiny_face_detector\"") != std::string::npos);
    LoadOptions cuda;
    cuda.device = Device::Cuda;
    CHECK(error_of([&] { load_face_landmarks(kLandmarks, cuda); }).find("CPU only") != std::string::npos);
    LoadOptions tf32;
    tf32.precision = Precision::Tf32;
    CHECK(error_of([&] { load_face_detector(kDetector, tf32); }).find("fp32 only") != std::string::npos);
    CHECK(error_of([] { load_model(kAgeGender); }).find("holds a \"faceapi_age_gender\" network, expected \"resnet\"") !=
          std::string::npos);
    {
        const std::string p = rewrite(kDetector, "nobias.safetensors", "conv8/bias");
        CHECK(error_of([&] { load_network<FaceApiTinyFaceDetector<CpuBackend>>(p); })
                  .find("tensor conv8/bias is missing (expected [25] F32)") != std::string::npos);
        std::remove(p.c_str());
    }
    {
        const std::string p = rewrite(kAgeGender, "shape.safetensors", "", "fc/age/weights");
        CHECK(error_of([&] { load_network<FaceApiAgeGender<CpuBackend>>(p); })
                  .find("tensor fc/age/weights: expected [512,1] F32, file has [1,1] F32") != std::string::npos);
        std::remove(p.c_str());
    }
    // Metadata: each change gives a message naming the file, the key and what was expected.
    SafetensorsFile st(kDetector);
    const nlohmann::json good = nlohmann::json::parse(st.metadata().at("softbio"));
    auto meta_error = [&](const std::string& label, const std::function<void(nlohmann::json&)>& change) {
        nlohmann::json m = good;
        change(m);
        const std::string p = rewrite(kDetector, label + ".safetensors", "", "", m.dump());
        const std::string msg = error_of([&] { open_model_file(p); });
        std::remove(p.c_str());
        CHECK(msg.rfind(p + ": ", 0) == 0);
        return msg;
    };
    auto has = [](const std::string& msg, const std::string& part) {
        INFO("message: " << msg);
        CHECK(msg.find(part) != std::string::npos);
    };
    has(meta_error("layout", [](auto& m) { m["model"]["tensor_layout"] = "pytorch"; }),
        "metadata model.tensor_layout: expected one of {tfjs}, found \"pytorch\"");
    has(meta_error("extra", [](auto& m) { m["model"]["score_treshold"] = 0.5; }),
        "metadata model.score_treshold: unknown key (known here:");
    has(meta_error("anchors", [](auto& m) { m["model"]["anchors"][2] = {1.0, -2.0}; }),
        "metadata model.anchors[2]: expected [width, height], two positive numbers (grid cells), found [1.0,-2.0]");
    has(meta_error("boxes", [](auto& m) { m["model"]["boxes_per_cell"] = 4; }),
        "metadata model.boxes_per_cell: 4 disagrees with the 5 anchors");
    has(meta_error("size", [](auto& m) { m["model"]["input_size"] = {400, 400}; }),
        "metadata model.input_size: expected a square size, a multiple of 32, found [400, 400]");
    has(meta_error("thresh", [](auto& m) { m["model"]["iou_threshold"] = 1.5; }),
        "metadata model.iou_threshold: expected a number in 0.0..1.0, found 1.5");
    has(meta_error("family", [](auto& m) { m["model"]["family"] = "faceapi_ssd"; }),
        "metadata model.family: unknown architecture \"faceapi_ssd\" (this build knows: resnet, faceapi_tiny_face_detector");
    has(meta_error("outputs", [](auto& m) { m.erase("outputs"); }), "metadata outputs: missing");
    has(meta_error("heads", [](auto& m) { m["heads"] = nlohmann::json::array(); }),
        "metadata heads: not used by family \"faceapi_tiny_face_detector\"");
    has(meta_error("chain", [](auto& m) {
            m["preprocess"]["steps"] = {{{"op", "resize"}, {"size", {416, 416}}}, {{"op", "to_tensor"}}};
        }),
        "metadata preprocess: family \"faceapi_tiny_face_detector\" takes face-api's float chain");
    has(meta_error("anchor", [](auto& m) { m["preprocess"]["steps"][1]["anchor"] = "middle"; }),
        "preprocess step 2 (pad_to_square): \"anchor\" must be \"top_left\" (padding right/bottom) or \"center\", found \"middle\"");
    has(meta_error("filter", [](auto& m) { m["preprocess"]["steps"][2]["filter"] = "bilinear"; }),
        "preprocess step 3 (resize): \"filter\" \"bilinear\" is not supported after to_float");
    has(meta_error("late", [](auto& m) { m["preprocess"]["steps"][0]["op"] = "pad_to_square"; }),
        "preprocess step 1 (pad_to_square): pad_to_square works on float32 pixels: the chain must start with to_float");
    has(meta_error("twice", [](auto& m) { m["preprocess"]["steps"][1] = {{"op", "to_float"}}; }),
        "preprocess step 2 (to_float): to_float must be the first step");
    has(meta_error("tensor", [](auto& m) { m["preprocess"]["steps"][3] = {{"op", "to_tensor"}}; }),
        "preprocess step 4 (to_tensor): to_tensor is a step of torchvision's 8-bit chain");
    has(meta_error("after", [](auto& m) { m["preprocess"]["steps"].push_back({{"op", "pad_to_square"}, {"anchor", "center"}}); }),
        "preprocess step 5 (pad_to_square): comes after normalize");
    has(meta_error("gender", [](auto& m) { m["model"]["family"] = "faceapi_age_gender"; }),
        "metadata model.anchors: unknown key (known here: family, tensor_layout, input_size, in_channels, crop)");
    // Written back and read again, a document gives the same text (the fuzz target's
    // round trip), whatever form the free-form output shapes take.
    {
        nlohmann::json m = good;
        m["outputs"][0]["shape"] = {"0", "007", 1048576, "12345678"};
        const ModelConfig cfg = parse_model_config("m", m.dump());
        const std::string once = model_config_to_json(cfg);
        CHECK(model_config_to_json(parse_model_config("m", once)) == once);
        CHECK(cfg.outputs[0].shape == std::vector<std::string>{"0", "007", "1048576", "12345678"});
    }
    // The age/gender file's gender classes in the other order would flip every answer.
    SafetensorsFile sa(kAgeGender);
    nlohmann::json swapped = nlohmann::json::parse(sa.metadata().at("softbio"));
    swapped["outputs"][1]["classes"] = {"female", "male"};
    const std::string p = rewrite(kAgeGender, "swapped.safetensors", "", "", swapped.dump());
    has(error_of([&] { open_model_file(p); }),
        "metadata outputs[1].classes: expected [\"male\", \"female\"] (face-api's index 0 is male), found [\"female\",\"male\"]");
    std::remove(p.c_str());
    // A std or mean beyond float32 (1e308 becomes inf) is refused, not written back as null.
    has(error_of([] {
            parse_preprocess(nlohmann::json::parse(R"({"steps":[{"op":"to_float"},{"op":"normalize","mean":[0,0,0],"std":[255,1e308,255]}]})"),
                             "m");
        }),
        "m: preprocess step 2 (normalize): \"std\" must be 3 finite numbers (R, G, B), found [255,1e+308,255]");
    // tf_bilinear on an 8-bit (torchvision) chain.
    has(error_of([] {
            parse_preprocess(nlohmann::json::parse(R"({"steps":[{"op":"resize","size":[4,4],"filter":"tf_bilinear"},{"op":"to_tensor"}]})"),
                             "m");
        }),
        "m: preprocess step 1 (resize): \"filter\" \"tf_bilinear\" resizes float32 pixels: it needs a chain that starts with to_float");
}
