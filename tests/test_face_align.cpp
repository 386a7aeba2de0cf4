// Face crops for user models (include/softbio/face/align.hpp, io/face_crop_json.hpp, and
// FacePipeline::add_model): the similarity fit against the least-squares problem solved
// another way, the sampling against exact cases (identity, shifts, a quarter turn, edges),
// the geometry end to end (marks drawn at the landmarks land on the template's targets),
// the metadata key, and a ResNet behind the detector on the astronaut.
//
// Tolerances: the fit is closed-form double arithmetic, held to 1e-9 of the coordinates
// against Gaussian elimination of the normal equations. Sampling on pixel centres must be
// exact (both kernels interpolate). The marks' centroids may move by the bicubic kernel's
// overshoot and the rounding to bytes: 0.1 px, a tenth of what would show a half-pixel
// convention error.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <unistd.h>

#include "softbio/core/random.hpp"
#include "softbio/face/align.hpp"
#include "softbio/face/pipeline.hpp"
#include "softbio/io/load.hpp"
#include "softbio/io/synthetic.hpp"
#include "softbio/model/presets.hpp"

using namespace softbio;
using namespace softbio::face;

namespace {

const std::string kData = SOFTBIO_DATA_DIR;

// The least-squares similarity by the normal equations of [a b tx ty], solved by Gaussian
// elimination with partial pivoting: the same problem as fit_similarity, another method.
Affine2d reference_fit(const std::vector<Point>& p, const std::vector<Point>& q) {
    double A[4][5] = {};
    for (size_t i = 0; i < p.size(); ++i) {
        const double rows[2][5] = {{p[i].x, -p[i].y, 1, 0, q[i].x}, {p[i].y, p[i].x, 0, 1, q[i].y}};
        for (const auto& r : rows)
            for (int j = 0; j < 4; ++j)
                for (int k = 0; k < 5; ++k) A[j][k] += r[j] * r[k];
    }
    for (int c = 0; c < 4; ++c) {
        int best = c;
        for (int r = c + 1; r < 4; ++r)
            if (std::abs(A[r][c]) > std::abs(A[best][c])) best = r;
        for (int k = 0; k < 5; ++k) std::swap(A[c][k], A[best][k]);
        for (int r = 0; r < 4; ++r)
            if (r != c) {
                const double f = A[r][c] / A[c][c];
                for (int k = 0; k < 5; ++k) A[r][k] -= f * A[c][k];
            }
    }
    const double a = A[0][4] / A[0][0], b = A[1][4] / A[1][1], tx = A[2][4] / A[2][2], ty = A[3][4] / A[3][3];
    Affine2d t;
    t.m00 = a, t.m01 = -b, t.m02 = tx, t.m10 = b, t.m11 = a, t.m12 = ty;
    return t;
}

RgbImage random_image(int w, int h, uint64_t seed) {
    SplitMix64 rng(seed);
    RgbImage img;
    img.width = w, img.height = h;
    img.pixels.resize(size_t(w) * h * 3);
    for (auto& v : img.pixels) v = uint8_t(rng.next() & 255);
    return img;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("face align: the similarity fit recovers exact maps and solves the least-squares problem") {
    SplitMix64 rng(7);
    for (int trial = 0; trial < 50; ++trial) {
        const int n = 2 + trial % 6;
        const double angle = (rng.uniform() * 2 - 1) * 3.0, scale = 0.05 + 3 * rng.uniform();
        Affine2d truth;
        truth.m00 = scale * std::cos(angle), truth.m01 = -scale * std::sin(angle), truth.m02 = 500 * (rng.uniform() - 0.5);
        truth.m10 = scale * std::sin(angle), truth.m11 = scale * std::cos(angle), truth.m12 = 500 * (rng.uniform() - 0.5);
        const size_t count = static_cast<size_t>(n);
        std::vector<Point> p(count), q(count), noisy(count);
        for (int i = 0; i < n; ++i) {
            p[size_t(i)] = {2000 * rng.uniform(), 1500 * rng.uniform()};
            q[size_t(i)] = truth.apply(p[size_t(i)]);
            noisy[size_t(i)] = {q[size_t(i)].x + 5 * (rng.uniform() - 0.5), q[size_t(i)].y + 5 * (rng.uniform() - 0.5)};
        }
        Affine2d fit;
        REQUIRE(fit_similarity(p.data(), q.data(), n, true, fit));
        for (int i = 0; i < n; ++i) {
            CHECK(fit.apply(p[size_t(i)]).x == doctest::Approx(q[size_t(i)].x).epsilon(1e-9).scale(1000));
            CHECK(fit.apply(p[size_t(i)]).y == doctest::Approx(q[size_t(i)].y).epsilon(1e-9).scale(1000));
        }
        if (n >= 3) {  // over-determined with noise: the least-squares optimum, found another way
            REQUIRE(fit_similarity(p.data(), noisy.data(), n, true, fit));
            const Affine2d ref = reference_fit(p, noisy);
            CHECK(fit.m00 == doctest::Approx(ref.m00).epsilon(1e-9));
            CHECK(fit.m10 == doctest::Approx(ref.m10).epsilon(1e-9));
            CHECK(fit.m02 == doctest::Approx(ref.m02).epsilon(1e-9).scale(1000));
            CHECK(fit.m12 == doctest::Approx(ref.m12).epsilon(1e-9).scale(1000));
            CHECK(fit.determinant() > 0);  // never a reflection
        }
    }
}

TEST_CASE("face align: without rotation, scale and shift only; degenerate points are refused") {
    const std::vector<Point> p = {{10, 20}, {30, 20}, {20, 40}};
    std::vector<Point> q;
    for (const Point& x : p) q.push_back({2.5 * x.x + 7, 2.5 * x.y - 3});
    Affine2d t;
    REQUIRE(fit_similarity(p.data(), q.data(), 3, false, t));
    CHECK(t.m00 == doctest::Approx(2.5));
    CHECK(t.m11 == doctest::Approx(2.5));
    CHECK(t.m01 == 0);
    CHECK(t.m10 == 0);
    CHECK(t.m02 == doctest::Approx(7));
    CHECK(t.m12 == doctest::Approx(-3));
    // A rotated face: the rotation-free fit keeps b = 0 and the least-squares scale.
    const std::vector<Point> turned = {{20, 10}, {20, 30}, {0, 20}};  // p turned by 90 degrees
    REQUIRE(fit_similarity(p.data(), turned.data(), 3, true, t));
    CHECK(std::abs(t.m10) > 0.9);
    Affine2d untouched;
    untouched.m02 = 42;
    const std::vector<Point> same = {{5, 5}, {5, 5}, {5, 5}};
    CHECK_FALSE(fit_similarity(same.data(), q.data(), 3, true, untouched));
    CHECK_FALSE(fit_similarity(p.data(), q.data(), 1, true, untouched));
    const std::vector<Point> nan = {{NAN, 5}, {5, 5}, {6, 7}};
    CHECK_FALSE(fit_similarity(nan.data(), q.data(), 3, true, untouched));
    const std::vector<Point> mirrored = {{-10, -20}, {-30, -20}, {-20, -40}};  // a half turn: a negative scale
    CHECK_FALSE(fit_similarity(p.data(), mirrored.data(), 3, false, untouched));
    CHECK(untouched.m02 == 42);
}

TEST_CASE("face align: sampling is exact on pixel centres, repeats the edges, turns exactly") {
    const RgbImage img = random_image(37, 23, 3);
    for (auto filter : {FaceCropSpec::Filter::Bilinear, FaceCropSpec::Filter::Bicubic}) {
        CAPTURE(int(filter));
        RgbImage out;
        warp_affine(img, Affine2d{}, img.width, img.height, filter, out);  // identity
        CHECK(out.pixels == img.pixels);
        // Shifted by (-5, +3) whole pixels, into a larger crop: pixels outside repeat the edge.
        Affine2d shift;
        shift.m02 = -5, shift.m12 = 3;
        warp_affine(img, shift, 50, 30, filter, out);
        for (int r = 0; r < 30; ++r)
            for (int c = 0; c < 50; ++c) {
                const int sy = std::clamp(r - 3, 0, img.height - 1), sx = std::clamp(c + 5, 0, img.width - 1);
                for (int ch = 0; ch < 3; ++ch) REQUIRE(out.at(r, c)[ch] == img.at(sy, sx)[ch]);
            }
        // A quarter turn: crop (u, v) = (H - y, x), so crop pixel (r, c) is photo pixel (H-1-c, r).
        Affine2d turn;
        turn.m00 = 0, turn.m01 = -1, turn.m02 = img.height, turn.m10 = 1, turn.m11 = 0, turn.m12 = 0;
        warp_affine(img, turn, img.height, img.width, filter, out);
        for (int r = 0; r < img.width; ++r)
            for (int c = 0; c < img.height; ++c)
                for (int ch = 0; ch < 3; ++ch) REQUIRE(out.at(r, c)[ch] == img.at(img.height - 1 - c, r)[ch]);
    }
    // Half-way between two pixels, bilinear gives their mean (rounded halves up).
    RgbImage two;
    two.width = 2, two.height = 1, two.pixels = {10, 0, 255, 21, 255, 0};
    Affine2d half;
    half.m00 = 0.5;  // crop pixel 0's centre 0.5 -> photo x = 1: between the two centres
    RgbImage out;
    warp_affine(two, half, 1, 1, FaceCropSpec::Filter::Bilinear, out);
    CHECK(out.pixels == std::vector<uint8_t>{16, 128, 128});
    // Bad maps and sizes are refused with a message.
    Affine2d flat;
    flat.m00 = 0, flat.m11 = 0;
    CHECK(error_of([&] { warp_affine(img, flat, 5, 5, FaceCropSpec::Filter::Bilinear, out); }).find("cannot be inverted") !=
          std::string::npos);
    CHECK(error_of([&] { warp_affine(img, Affine2d{}, 0, 5, FaceCropSpec::Filter::Bilinear, out); }).find("size 0x5") !=
          std::string::npos);
}

TEST_CASE("face align: CelebA's crop puts marks drawn at the eyes and mouth on the template's targets") {
    const FaceCropSpec spec = named_face_crop("celeba");
    // A face somewhere in a photo, turned and scaled: its eye and mouth points are the
    // template's targets under a known similarity; a bright 3x3-ish blob at each.
    const double angle = 0.3, scale = 2.2;
    Affine2d crop_to_photo;
    crop_to_photo.m00 = scale * std::cos(angle), crop_to_photo.m01 = -scale * std::sin(angle), crop_to_photo.m02 = 400;
    crop_to_photo.m10 = scale * std::sin(angle), crop_to_photo.m11 = scale * std::cos(angle), crop_to_photo.m12 = 150;
    std::array<Point, 68> lm{};
    Point eye_l = crop_to_photo.apply({spec.targets[0][0], spec.targets[0][1]});
    Point eye_r = crop_to_photo.apply({spec.targets[1][0], spec.targets[1][1]});
    Point mouth = crop_to_photo.apply({spec.targets[2][0], spec.targets[2][1]});
    for (int i = 36; i <= 41; ++i) lm[size_t(i)] = {eye_l.x + (i - 38.5), eye_l.y};  // symmetric about the centre
    for (int i = 42; i <= 47; ++i) lm[size_t(i)] = {eye_r.x + (i - 44.5), eye_r.y};
    lm[48] = {mouth.x - 20, mouth.y - 3}, lm[54] = {mouth.x + 20, mouth.y + 3};
    RgbImage photo;
    photo.width = 900, photo.height = 800;
    photo.pixels.assign(size_t(photo.width) * photo.height * 3, 0);
    for (const Point& c : {eye_l, eye_r, mouth})
        for (int y = int(c.y) - 8; y <= int(c.y) + 8; ++y)
            for (int x = int(c.x) - 8; x <= int(c.x) + 8; ++x) {
                const double d2 = (x + 0.5 - c.x) * (x + 0.5 - c.x) + (y + 0.5 - c.y) * (y + 0.5 - c.y);
                photo.at(y, x)[1] = uint8_t(std::lround(250 * std::exp(-d2 / (2 * 2.0 * 2.0))));
            }
    RgbImage crop;
    Affine2d map;
    REQUIRE(cut_face(photo, spec, Box{}, lm, crop, &map));
    CHECK(crop.width == 178);
    CHECK(crop.height == 218);
    for (size_t k = 0; k < 3; ++k) {
        double sum = 0, sx = 0, sy = 0;
        const int tx = int(spec.targets[k][0]), ty = int(spec.targets[k][1]);
        for (int y = ty - 6; y <= ty + 6; ++y)
            for (int x = tx - 6; x <= tx + 6; ++x) {
                const double v = crop.at(y, x)[1];
                sum += v, sx += v * (x + 0.5), sy += v * (y + 0.5);
            }
        REQUIRE(sum > 0);
        CAPTURE(k);
        CHECK(std::abs(sx / sum - spec.targets[k][0]) < 0.1);
        CHECK(std::abs(sy / sum - spec.targets[k][1]) < 0.1);
    }
}

TEST_CASE("face align: the box crop widens, lifts and squares the detector's box") {
    const FaceCropSpec spec = named_face_crop("cacd");
    const Box box{100, 50, 80, 100};
    Affine2d t;
    REQUIRE(face_crop_transform(spec, box, {}, t));
    // widened by 0.15: x 88..192 (104 wide), y 35..165, lifted by 0.05 * 100: 30..160 (130
    // tall) -> a square of side 130 centred at (140, 95): x 75..205, y 30..160, onto 120 x 120.
    const Point tl = t.apply({75, 30}), br = t.apply({205, 160});
    CHECK(tl.x == doctest::Approx(0).scale(1));
    CHECK(tl.y == doctest::Approx(0).scale(1));
    CHECK(br.x == doctest::Approx(120));
    CHECK(br.y == doctest::Approx(120));
    CHECK_FALSE(face_crop_transform(spec, Box{0, 0, 0, 0}, {}, t));
    CHECK(error_of([] { named_face_crop("imagenet"); }).find("unknown face crop \"imagenet\"") != std::string::npos);
}

TEST_CASE("face align: the face_crop metadata key round-trips and refuses what it cannot use") {
    const std::string fail = "m.safetensors";
    for (const char* name : {"celeba", "cacd"}) {
        const FaceCropSpec s = named_face_crop(name);
        const FaceCropSpec back = parse_face_crop(face_crop_to_json(s), fail);
        CHECK(face_crop_to_json(back) == face_crop_to_json(s));
        CHECK(back.name == name);
    }
    const nlohmann::json good = face_crop_to_json(named_face_crop("celeba"));
    auto refused = [&](nlohmann::json j) { return error_of([&] { parse_face_crop(j, fail); }); };
    nlohmann::json j = good;
    j["method"] = "affine";
    CHECK(refused(j).find("face_crop.method: expected \"similarity\" or \"box\"") != std::string::npos);
    j = good, j["targets"].erase(0);
    CHECK(refused(j).find("face_crop.targets: expected 3 [x, y] pairs") != std::string::npos);
    j = good, j["points"][1] = 68;
    CHECK(refused(j).find("face_crop.points[1]: expected left_eye") != std::string::npos);
    j = good, j["points"][1] = "chin";
    CHECK(refused(j).find("face_crop.points[1]") != std::string::npos);
    j = good, j["size"] = {0, 178};
    CHECK(refused(j).find("face_crop.size: expected [height, width]") != std::string::npos);
    j = good, j["margin"] = 0.1;
    CHECK(refused(j).find("face_crop.margin: unknown key for method similarity") != std::string::npos);
    j = good, j["targets"] = {{1, 2}, {1, 2}, {1, 2}};
    CHECK(refused(j).find("all targets are the same point") != std::string::npos);
    j = good, j["targets"][0][0] = 1e300;
    CHECK(refused(j).find("face_crop.targets[0]") != std::string::npos);
    j = face_crop_to_json(named_face_crop("cacd")), j["margin"] = -0.5;
    CHECK(refused(j).find("face_crop.margin: expected a number in -0.45..10") != std::string::npos);
    j = good, j["points"][2] = 30;  // an index is a point too
    CHECK(parse_face_crop(j, fail).points[2].landmark == FaceLandmark::Point68);
}

TEST_CASE("face pipeline: a ResNet that declares CelebA's crop runs on each face's aligned crop") {
    ModelConfig cfg = preset_config("celeba-r18");
    cfg.face_crop = named_face_crop("celeba");
    const std::string path = "/tmp/softbio_test_face_align_" + std::to_string(::getpid()) + ".safetensors";
    write_synthetic_model(path, cfg);
    auto model = load_model(path);
    cfg.face_crop.reset();
    const std::string plain = path + ".plain.safetensors";
    write_synthetic_model(plain, cfg);
    auto no_crop = load_model(plain);
    std::remove(path.c_str());
    std::remove(plain.c_str());

    FacePipeline pipeline = FacePipeline::load(kData + "/models");
    CHECK(error_of([&] { pipeline.add_model(no_crop); }).find("declares no face crop") != std::string::npos);
    pipeline.add_model(model);
    const RgbImage img = load_rgb_image(kData + "/astronaut.png");
    auto ws = pipeline.make_workspace();
    const auto& faces = pipeline.analyze(img, *ws);
    REQUIRE(faces.size() == 1);
    const FaceAnalysis& f = faces[0];
    CHECK_FALSE(f.has_age_gender);
    REQUIRE(f.models.size() == 1);
    REQUIRE(f.models[0].ok());
    // The same crop given to the model alone (Predictor) gives the same logits, bit for bit.
    RgbImage crop;
    REQUIRE(pipeline.face_crop(img, f, 0, crop));
    CHECK(crop.width == 178);
    CHECK(crop.height == 218);
    Predictor alone(model);
    const Prediction p = alone.predict(crop);
    REQUIRE(p.heads.size() == f.models[0].heads.size());
    CHECK(p.heads[0].logits == f.models[0].heads[0].logits);
    // The crop's eyes are where CelebA puts them: the fitted map takes the landmark eyes
    // within a few pixels of the targets (three points, four parameters: a residual).
    Affine2d map;
    REQUIRE(face_crop_transform(*model->config().face_crop, f.detection.box, f.landmarks, map));
    const Point eye = map.apply(landmark_position(f.landmarks, {FaceLandmark::LeftEye, -1}));
    CHECK(std::abs(eye.x - 70.245) < 4);
    CHECK(std::abs(eye.y - 111.5) < 4);
    // Analysing again reuses the workspace and gives the same answer.
    const std::vector<float> first = f.models[0].heads[0].logits;
    CHECK(pipeline.analyze(img, *ws)[0].models[0].heads[0].logits == first);
}
