// Face geometry (include/softbio/face/): Math.round, IoU, NMS, the detector's decoding,
// crops, landmark mapping and the aligned rect, against hand-computed cases and against
// face-api's own numbers in tests/face/data (the original's outputs on data/astronaut.png).
//
// Tolerance: these are the same double-precision formulas as face-api's JavaScript, fed
// the same float32 network outputs, so results agree to rounding: 1e-9 px (relative 1e-11
// of the coordinates) where the reference printed its doubles, which leaves room only for
// a different order of two operations.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "softbio/face/crops.hpp"
#include "softbio/face/detections.hpp"
#include "softbio/face/geometry.hpp"
#include "softbio/io/npy.hpp"

using namespace softbio::face;

namespace {

const std::string kFaceData = std::string(SOFTBIO_DATA_DIR) + "/../tests/face/data/";

nlohmann::json astronaut_pipeline() {
    std::ifstream f(kFaceData + "astronaut_pipeline.json");
    REQUIRE(f.good());
    return nlohmann::json::parse(f);
}

Box box_of(const nlohmann::json& j) {
    return Box{j.at("x").get<double>(), j.at("y").get<double>(), j.at("width").get<double>(), j.at("height").get<double>()};
}

const DetectorDecoding kFaceApiDecoding{
    {{1.603231, 2.094468}, {6.041143, 7.080126}, {2.882459, 3.518061}, {4.266906, 5.178857}, {9.041765, 10.66308}}, 0.5, 0.4};

}  // namespace

TEST_CASE("face: js_round is JavaScript's Math.round (halves up, towards +infinity)") {
    CHECK(js_round(2.5) == 3.0);
    CHECK(js_round(-2.5) == -2.0);
    CHECK(js_round(-2.51) == -3.0);
    CHECK(js_round(0.49999999999999994) == 0.0);  // x + 0.5 would round this up
    CHECK(js_round(1e300) == 1e300);
    CHECK(js_round(3.0) == 3.0);
}

TEST_CASE("face: IoU and greedy NMS as face-api (stable ascending sort, IoU > threshold dropped)") {
    const Box a{0, 0, 10, 10}, b{5, 0, 10, 10}, far{100, 100, 4, 4};
    CHECK(iou(a, a) == 1.0);
    CHECK(iou(a, b) == doctest::Approx(50.0 / 150.0));
    CHECK(iou(a, far) == 0.0);
    std::vector<int> order, keep;
    SUBCASE("highest first; overlaps above the threshold removed; IoU equal to it kept") {
        non_max_suppression({a, b, far}, {0.6, 0.9, 0.7}, 0.3, order, keep);
        CHECK(keep == std::vector<int>{1, 2});  // a overlaps b by 1/3 > 0.3
        non_max_suppression({a, b, far}, {0.6, 0.9, 0.7}, 50.0 / 150.0, order, keep);
        CHECK(keep == std::vector<int>{1, 2, 0});
    }
    SUBCASE("equal scores: the later candidate wins") {
        non_max_suppression({a, b}, {0.8, 0.8}, 0.1, order, keep);
        CHECK(keep == std::vector<int>{1});
    }
    SUBCASE("two empty boxes at one place: IoU is NaN, which drops") {
        const Box empty{3, 3, 0, 0};
        non_max_suppression({empty, empty}, {0.5, 0.6}, 0.4, order, keep);
        CHECK(keep == std::vector<int>{1});
    }
}

TEST_CASE("face: the detector's grid decoded as face-api decodes it") {
    // The original's raw output at 320 px on the 512 x 512 astronaut (tests/face/data);
    // the expected boxes are face-api's formulas evaluated in double precision
    // (tests/face/faceapi_numpy.py's decoding, which matches the original to 7e-5 px).
    const auto raw = softbio::npy::read_f32(kFaceData + "astronaut_detector320_output.npy");
    REQUIRE(raw.shape == std::vector<int64_t>{1, 10, 10, 25});
    const std::vector<float>& grid = raw.data;  // NHWC [1, g, g, 25], softbio's layout too
    std::vector<Detection> found;
    DetectionScratch scratch;
    auto check_box = [](const Detection& d, double x, double y, double w, double h, double score) {
        CHECK(d.box.x == doctest::Approx(x).epsilon(1e-12));
        CHECK(d.box.y == doctest::Approx(y).epsilon(1e-12));
        CHECK(d.box.width == doctest::Approx(w).epsilon(1e-12));
        CHECK(d.box.height == doctest::Approx(h).epsilon(1e-12));
        CHECK(d.score == doctest::Approx(score).epsilon(1e-12));
    };
    decode_detections(grid.data(), 10, 320, kFaceApiDecoding, 512, 512, found, scratch);
    REQUIRE(found.size() == 1);
    check_box(found[0], 150.46341210695343, 73.10283095563986, 138.58199441346022, 119.40805808166101, 0.85815098988266314);
    SUBCASE("a 600 x 400 image: the padding correction (cx = 1, cy = 1.5) and the scaling by (W, H)") {
        decode_detections(grid.data(), 10, 320, kFaceApiDecoding, 600, 400, found, scratch);
        REQUIRE(found.size() == 1);
        check_box(found[0], 176.32431106283605, 85.801444783614855, 162.4007747032737, 140.15030291274766, 0.85815098988266314);
    }
    SUBCASE("threshold 0.05: three candidates, two survive NMS, best first") {
        DetectorDecoding low = kFaceApiDecoding;
        low.score_threshold = 0.05;
        decode_detections(grid.data(), 10, 320, low, 512, 512, found, scratch);
        REQUIRE(found.size() == 2);
        CHECK(scratch.boxes.size() == 3);
        check_box(found[1], 6.8929625716044143, 251.2903157689496, 252.39776847925691, 251.72501848083689, 0.13760970440754097);
    }
    SUBCASE("threshold 1: nothing") {
        DetectorDecoding none = kFaceApiDecoding;
        none.score_threshold = 1.0;
        decode_detections(grid.data(), 10, 320, none, 512, 512, found, scratch);
        CHECK(found.empty());
    }
}

TEST_CASE("face: crop regions are clipped, then floored; empty when nothing is inside") {
    CHECK(crop_region(Box{10.7, 20.2, 30.9, 40.99}, 100, 100).x == 10);
    const PixelRegion r = crop_region(Box{10.7, 20.2, 30.9, 40.99}, 100, 100);
    CHECK((r.x == 10 && r.y == 20 && r.width == 30 && r.height == 40));
    const PixelRegion clipped = crop_region(Box{-5.5, 90.5, 20, 20}, 100, 100);
    CHECK((clipped.x == 0 && clipped.y == 90 && clipped.width == 14 && clipped.height == 9));
    CHECK(crop_region(Box{120, 10, 5, 5}, 100, 100).empty());
    CHECK(crop_region(Box{-20, 10, 19.5, 5}, 100, 100).empty());
    CHECK(crop_region(Box{10, 10, 0.5, 5}, 100, 100).empty());  // floor(0.5) = 0
    CHECK(crop_region(Box{std::nan(""), 10, 5, 5}, 100, 100).empty());
}

TEST_CASE("face: landmarks and the aligned rect match the original on the astronaut") {
    const nlohmann::json face = astronaut_pipeline().at("faces").at(0);
    const Box box = box_of(face.at("box"));
    const PixelRegion region = crop_region(box, 512, 512);
    REQUIRE(!region.empty());
    const auto out = softbio::npy::read_f32(kFaceData + "astronaut_face0_landmark68_output.npy");
    REQUIRE(out.data.size() == 136);
    Point points[68];
    landmarks_to_image(out.data.data(), 68, 112, region, box, points);
    const nlohmann::json& expected = face.at("landmarks");
    REQUIRE(expected.size() == 68);
    double worst = 0;
    for (int i = 0; i < 68; ++i) {
        worst = std::max(worst, std::abs(points[i].x - expected[size_t(i)][0].get<double>()));
        worst = std::max(worst, std::abs(points[i].y - expected[size_t(i)][1].get<double>()));
    }
    CHECK(worst < 1e-9);
    // The aligned rect from the original's own landmarks.
    for (int i = 0; i < 68; ++i) points[i] = Point{expected[size_t(i)][0].get<double>(), expected[size_t(i)][1].get<double>()};
    const Box rect = aligned_rect(points, 68), want = box_of(face.at("aligned_rect"));
    CHECK(rect.x == doctest::Approx(want.x).epsilon(1e-12));
    CHECK(rect.y == doctest::Approx(want.y).epsilon(1e-12));
    CHECK(rect.width == doctest::Approx(want.width).epsilon(1e-12));
    CHECK(rect.height == doctest::Approx(want.height).epsilon(1e-12));
    SUBCASE("points all left of / above the origin: the maxima start at 0 (face-api's quirk)") {
        const Point neg[2] = {{-10, -20}, {-4, -8}};
        const Box q = aligned_rect(neg, 2);  // x0 = -10, x1 = max(0, ...) = 0: w = 10
        CHECK(q.x == doctest::Approx(-11.0));
        CHECK(q.width == doctest::Approx(12.0));
        CHECK(q.y == doctest::Approx(-22.0));
        CHECK(q.height == doctest::Approx(24.0));
    }
}
