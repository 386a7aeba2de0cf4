// tests/test_model.cpp — whole ResNets built from synthetic weight files through the
// public API, against the slow reference forward (reference_resnet.hpp).
//
// TOLERANCE RULE (whole networks): after ~100 layers the fp32 rounding differences of
// the individual ops (tests/tolerance.hpp) compound, so outputs are compared relative
// to their range: max |engine - reference| <= 1e-4 * (max - min of the reference
// values), for every stage output and every head's logits. With these weights logits
// range over O(1), and a wrong layer (stride, padding, fold, order) moves them by a
// sizeable fraction of that range: the check can fail. Labels must be identical.
// ("range" = max - min; the Python parity tests' "spread" is a standard deviation.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include <softbio/model/presets.hpp>
#include <softbio/softbio.hpp>

#include "reference_resnet.hpp"
#include "test_util.hpp"

using namespace softbio;

namespace {

double value_range(const std::vector<float>& v) {
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return double(*hi) - double(*lo);
}

void check_relative(const float* got, const std::vector<float>& ref, const std::string& what) {
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - double(ref[i])));
    const double s = value_range(ref);
    INFO(what << ": max|diff| = " << worst << ", range = " << s);
    CHECK(s > 0);
    CHECK(worst <= 1e-4 * s);
}

// Build the model from `cfg`, run it folded and unfused on `batch` random images, and
// compare stage outputs and logits with the reference forward.
void check_model(const ModelConfig& cfg, int batch, const std::string& label) {
    const std::string path = test::temp_path(label + ".safetensors");
    write_synthetic_model(path, cfg, {});
    const int h = cfg.arch.input_h, w = cfg.arch.input_w, c = cfg.arch.in_channels;
    auto input = test::random_vector(size_t(batch) * h * w * c, 7);
    for (auto& v : input) v = 0.5f * (v + 1.0f);  // [0, 1], like ToTensor
    const auto ref = test::reference_forward(open_model_file(path), input, batch, h, w);
    for (bool fold : {true, false}) {
        auto model = load_model(path, LoadOptions{fold});
        auto ws = model->make_workspace(batch);
        std::map<std::string, std::vector<float>> seen;
        LayerObserver obs = [&](const LayerEvent& e) {
            const std::string key = e.name == "maxpool" ? "stem" : e.name;
            seen[key].assign(e.output.data, e.output.data + e.output.shape.numel());
        };
        model->forward(input.data(), batch, *ws, &obs);
        const std::string tag = label + (fold ? " folded" : " unfused");
        for (const auto& [name, map] : ref.stages) {
            REQUIRE(seen.count(name));
            check_relative(seen[name].data(), map.v, tag + " " + name);
        }
        check_relative(ws->features(), ref.features, tag + " features");
        std::vector<std::vector<HeadOutput>> out;
        model->decode(*ws, batch, out);
        for (size_t i = 0; i < cfg.heads.size(); ++i) {
            const auto& z = ref.logits.at(cfg.heads[i].name);
            check_relative(ws->logits(i), z, tag + " head " + cfg.heads[i].name);
            for (int n = 0; n < batch; ++n) {
                HeadOutput expect;
                decode_head(cfg.heads[i], z.data() + size_t(n) * cfg.heads[i].logits(), expect);
                CHECK(out[size_t(n)][i].label == expect.label);
            }
        }
    }
    std::remove(path.c_str());
}

}  // namespace

TEST_CASE("model: ResNet-18 (basic blocks, Raschka AvgPool2d(7,1,2) at 128 px) matches the reference, batch 1 and 3") {
    auto cfg = test::make_config(BlockType::Basic, {2, 2, 2, 2}, 128, true);
    check_model(cfg, 1, "r18_b1");
    check_model(cfg, 3, "r18_b3");
}

TEST_CASE("model: ResNet-101 (bottleneck v1.5, adaptive pool) matches the reference") {
    auto cfg = test::make_config(BlockType::Bottleneck, {3, 4, 23, 3}, 64, false);
    check_model(cfg, 2, "r101");
}

TEST_CASE("model: ResNet-50 with the stride on conv1 (original v1) matches the reference, and differs from v1.5") {
    auto v1 = test::make_config(BlockType::Bottleneck, {3, 4, 6, 3}, 96, true, StrideIn::Conv1);
    check_model(v1, 1, "r50v1");
    auto v15 = v1;
    v15.arch.stride_in = StrideIn::Conv2;
    const std::string p1 = test::temp_path("v1.safetensors"), p15 = test::temp_path("v15.safetensors");
    write_synthetic_model(p1, v1);
    write_synthetic_model(p15, v15);  // same seed: identical weights, other network
    auto m1 = load_model(p1), m15 = load_model(p15);
    auto w1 = m1->make_workspace(1), w15 = m15->make_workspace(1);
    auto x = test::random_vector(96 * 96 * 3, 3);
    m1->forward(x.data(), 1, *w1);
    m15->forward(x.data(), 1, *w15);
    CHECK(std::fabs(w1->logits(0)[0] - w15->logits(0)[0]) > 1e-3);
    std::remove(p1.c_str());
    std::remove(p15.c_str());
}

TEST_CASE("model: flagship ResNet-101 at 128 px: shapes, parameters, batch consistency, shared model across workspaces") {
    auto cfg = test::make_config(BlockType::Bottleneck, {3, 4, 23, 3}, 128, true);
    const std::string path = test::temp_path("flagship.safetensors");
    write_synthetic_model(path, cfg);
    auto model = load_as<ResNet101>(path);
    CHECK(model->feature_width() == 8192);
    // Raschka's notebook R101 has 42,516,546 parameters with fc 8192->2; the CORAL
    // head adds 8192 + 25.
    CHECK(model->parameter_count() == 42516546 + 8192 + 25);
    CHECK_THROWS_AS(load_as<ResNet50>(path), ModelFileError);

    auto batch = test::random_vector(3 * 128 * 128 * 3, 9);
    auto ws3 = model->make_workspace(3);
    model->forward(batch.data(), 3, *ws3);
    auto ws1 = model->make_workspace(1);  // a second workspace on the same model
    for (int n = 0; n < 3; ++n) {
        model->forward(batch.data() + size_t(n) * 128 * 128 * 3, 1, *ws1);
        for (size_t i = 0; i < model->heads().size(); ++i) {
            const int k = model->heads()[i].logits();
            for (int j = 0; j < k; ++j) CHECK(ws1->logits(i)[j] == doctest::Approx(ws3->logits(i)[size_t(n) * k + j]).epsilon(1e-5));
        }
    }
    CHECK_THROWS_AS(model->forward(batch.data(), 4, *ws3), ShapeError);
    CHECK_THROWS_AS(model->make_workspace(1, 224, 224), ShapeError);  // fc is 8192 wide: 128 px only
    std::remove(path.c_str());
}

TEST_CASE("model: the description gives torchvision's parameter counts, tensor lists and unit names") {
    // Parameter counts as torchvision 0.14 reports them (sum(p.numel() for p in
    // model.parameters()), fc 1000 wide): the description alone, no weights needed.
    const std::pair<const char*, long long> counts[] = {{"torchvision-r18", 11689512}, {"torchvision-r34", 21797672},
                                                        {"torchvision-r50", 25557032}, {"torchvision-r101", 44549160},
                                                        {"torchvision-r152", 60192808}};
    for (const auto& [preset, params] : counts) {
        const NetworkDesc d = describe_network(preset_config(preset));
        INFO(preset);
        CHECK(d.parameter_count() == params);
    }
    // ResNet-101: 104 BatchNorms, so 626 state_dict entries less 104 num_batches_tracked.
    const NetworkDesc r101 = describe_network(preset_config("torchvision-r101"));
    CHECK(r101.tensors().size() == 522);
    // Data flow: the first block of layer2 projects its shortcut with stride 2; the
    // second adds its input unchanged.
    const UnitDesc& last = r101.units[size_t(r101.find("layer2.0.conv3"))];
    REQUIRE(last.add >= 0);
    CHECK(r101.units[size_t(last.add)].name == "layer2.0.downsample");
    CHECK(r101.units[size_t(last.add)].stride == 2);
    CHECK(r101.units[size_t(r101.find("layer2.0.conv2"))].stride == 2);  // v1.5: stride on the 3x3
    const UnitDesc& next = r101.units[size_t(r101.find("layer2.1.conv3"))];
    CHECK(r101.units[size_t(next.add)].name == "layer2.0.conv3");  // identity: the block's input
    // Shapes at 224: 7x7x2048 before the pool; 4.1 GMACs for ResNet-50 as usually quoted.
    const auto shapes = r101.shapes({1, 224, 224, 3});
    CHECK(shapes[size_t(r101.find("layer4.2.conv3"))] == Shape{1, 7, 7, 2048});
    const double r50_macs = describe_network(preset_config("torchvision-r50")).macs({1, 224, 224, 3});
    CHECK(r50_macs == doctest::Approx(4.09e9).epsilon(0.01));
}

TEST_CASE("model: every unit of the description reports to the observer under its name, once, with its MACs") {
    auto cfg = test::make_config(BlockType::Bottleneck, {1, 2, 1, 1}, 64, false);
    const std::string path = test::temp_path("names.safetensors");
    write_synthetic_model(path, cfg);
    auto model = load_model(path);
    auto ws = model->make_workspace(2);
    auto x = test::random_vector(2 * 64 * 64 * 3, 5);
    std::map<std::string, int> seen;
    double macs = 0;
    LayerObserver obs = [&](const LayerEvent& e) {
        ++seen[e.name];
        macs += e.macs;
        std::vector<float> host(e.output.shape.numel());
        e.copy_output(host.data());  // works on any backend
        CHECK(std::equal(host.begin(), host.end(), e.output.data));
    };
    model->forward(x.data(), 2, *ws, &obs);
    for (const auto& u : model->description().units) {
        INFO(u.name);
        CHECK(seen[u.name] == 1);
    }
    CHECK(macs == doctest::Approx(model->macs({2, 64, 64, 3})));
    std::remove(path.c_str());
}

TEST_CASE("model: reproducibility: bit-identical for the same thread count and batch, last-bit differences otherwise") {
    // What varies and why (docs/RELIABILITY.md): conv2d cuts each GEMM into tiles whose
    // shape depends on the thread count (column splits at small M) and on M (the batch),
    // and Eigen's micro-kernel sums the K products of a row in a different order in the
    // remainder rows of a tile. So an image's logits can change in the last bits with
    // --threads or with its position in a batch. They never change between two runs with
    // the same thread count, batch size and position. This test pins both facts.
    auto cfg = test::make_config(BlockType::Bottleneck, {1, 1, 2, 1}, 64, false);
    const std::string path = test::temp_path("repro.safetensors");
    write_synthetic_model(path, cfg);
    auto model = load_model(path);
    auto x = test::random_vector(3 * 64 * 64 * 3, 21);
    auto logits = [&](int threads, int batch, const float* in) {
        auto ws = model->make_workspace(batch, 0, 0, threads);
        model->forward(in, batch, *ws);
        return std::vector<float>(ws->logits(0), ws->logits(0) + 2 * batch);
    };
    for (int threads : {1, 2, 3}) CHECK(logits(threads, 3, x.data()) == logits(threads, 3, x.data()));  // bit-identical
    const auto ref = logits(1, 3, x.data());
    const double range = value_range(ref);
    for (int threads : {2, 3}) {
        const auto got = logits(threads, 3, x.data());
        for (size_t i = 0; i < ref.size(); ++i) CHECK(std::fabs(got[i] - ref[i]) <= 1e-5 * range);
    }
    const auto alone = logits(1, 1, x.data() + 2 * 64 * 64 * 3);  // the third image alone
    for (int j = 0; j < 2; ++j) CHECK(std::fabs(alone[size_t(j)] - ref[size_t(4 + j)]) <= 1e-5 * range);
    std::remove(path.c_str());
}

TEST_CASE("model: one loaded model serves several threads at once, each with its own workspace") {
    auto cfg = test::make_config(BlockType::Basic, {2, 2, 2, 2}, 64, false);
    const std::string path = test::temp_path("threads.safetensors");
    write_synthetic_model(path, cfg);
    std::shared_ptr<const Model> model = load_model(path);
    auto x = test::random_vector(2 * 64 * 64 * 3, 5);
    auto solo = model->make_workspace(2, 0, 0, 1);
    model->forward(x.data(), 2, *solo);
    std::vector<float> expect(solo->logits(1), solo->logits(1) + 2 * 25);
    std::vector<std::thread> pool;
    std::vector<int> mismatches(4, 0);
    for (int t = 0; t < 4; ++t)
        pool.emplace_back([&, t] {
            auto ws = model->make_workspace(2, 0, 0, 1);
            for (int rep = 0; rep < 3; ++rep) {
                model->forward(x.data(), 2, *ws);
                for (int i = 0; i < 50; ++i) mismatches[size_t(t)] += ws->logits(1)[i] != expect[size_t(i)];
            }
        });
    for (auto& th : pool) th.join();
    for (int m : mismatches) CHECK(m == 0);  // same thread count -> bit-identical results
    std::remove(path.c_str());
}
