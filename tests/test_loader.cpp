// tests/test_loader.cpp — every way a model file can be wrong gives one clear error
// naming the file and the tensor or key; a failed load leaves nothing behind and does
// not disturb models already loaded.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <chrono>
#include <future>

#include <sys/stat.h>
#include <unistd.h>

#include <softbio/softbio.hpp>

#include "test_util.hpp"

using namespace softbio;

namespace {

std::string read_all(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
void write_all(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out << bytes;
}

// A small valid model (ResNet-18 at 64 px) as tensors we can tamper with.
struct Fixture {
    ModelConfig cfg = test::make_config(BlockType::Basic, {2, 2, 2, 2}, 64, false);
    std::vector<std::vector<float>> data;
    std::vector<TensorToWrite> tensors;
    Fixture() {
        for (const auto& e : describe_network(cfg).tensors()) {
            size_t n = 1;
            for (auto d : e.shape) n *= size_t(d);
            data.emplace_back(n, 0.5f);
        }
        size_t i = 0;
        for (const auto& e : describe_network(cfg).tensors()) tensors.push_back({e.name, e.shape, data[i++].data()});
    }
    std::string write(const std::string& name, const std::string& metadata) {
        const std::string p = test::temp_path(name);
        write_safetensors(p, tensors, {{"softbio", metadata}});
        return p;
    }
    std::string write(const std::string& name) { return write(name, model_config_to_json(cfg)); }
};

// Load must throw ModelFileError whose message contains every one of `parts`.
void expect_error(const std::string& path, std::initializer_list<std::string> parts) {
    std::string msg;
    try {
        load_model(path);
    } catch (const ModelFileError& e) {
        msg = e.what();
    }
    INFO("message: " << msg);
    REQUIRE_FALSE(msg.empty());
    CHECK(msg.rfind(path, 0) == 0);  // starts with the file name
    for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
    std::remove(path.c_str());
}

}  // namespace

TEST_CASE("loader: a valid file loads, and a model survives another file's failed load") {
    Fixture f;
    const std::string good = f.write("good.safetensors");
    auto model = load_model(good);
    auto ws = model->make_workspace(1);
    std::vector<float> x(64 * 64 * 3, 0.25f);
    model->forward(x.data(), 1, *ws);
    const float before = ws->logits(0)[0];
    const std::string missing_path = test::temp_path("does_not_exist.safetensors");
    CHECK_THROWS_AS(load_model(missing_path), ModelFileError);
    model->forward(x.data(), 1, *ws);
    CHECK(ws->logits(0)[0] == before);
    std::remove(good.c_str());
}

TEST_CASE("loader: missing, unexpected, mis-shaped and wrong-dtype tensors are named") {
    {
        Fixture f;
        f.tensors.erase(f.tensors.begin() + 10);
        const std::string name = describe_network(f.cfg).tensors()[10].name;
        expect_error(f.write("missing.safetensors"), {"tensor " + name + " is missing"});
    }
    {
        Fixture f;
        std::vector<float> extra(4, 1.0f);
        f.tensors.push_back({"layer1.0.bn1.num_batches_tracked", {4}, extra.data()});
        expect_error(f.write("extra.safetensors"), {"unexpected tensor layer1.0.bn1.num_batches_tracked"});
    }
    {
        Fixture f;
        for (auto& t : f.tensors)
            if (t.name == "layer3.1.conv2.weight") t.shape = {256, 256, 1, 1};  // fewer floats: still in the buffer
        expect_error(f.write("shape.safetensors"),
                     {"tensor layer3.1.conv2.weight: expected [256,256,3,3] F32, file has [256,256,1,1] F32"});
    }
    {
        Fixture f;
        const std::string p = f.write("dtype.safetensors");
        std::string bytes = read_all(p);
        const std::string key = "\"conv1.weight\":{\"data_offsets\":";
        auto at = bytes.find(key);
        REQUIRE(at != std::string::npos);
        auto dt = bytes.find("\"F32\"", at);
        bytes.replace(dt, 5, "\"I32\"");  // same element size, wrong type
        write_all(p, bytes);
        expect_error(p, {"tensor conv1.weight: expected [64,3,7,7] F32, file has [64,3,7,7] I32"});
    }
}

TEST_CASE("loader: container errors: truncated, header length, malformed JSON, offsets outside the file, overlap") {
    Fixture f;
    const std::string p = f.write("container.safetensors");
    const std::string bytes = read_all(p);
    std::remove(p.c_str());

    const std::string trunc = test::temp_path("trunc.safetensors");
    write_all(trunc, bytes.substr(0, bytes.size() / 2));
    expect_error(trunc, {"outside the file", "truncated"});

    const std::string tiny = test::temp_path("tiny.safetensors");
    write_all(tiny, bytes.substr(0, 5));
    expect_error(tiny, {"too short"});

    const std::string hdr = test::temp_path("hdr.safetensors");
    write_all(hdr, bytes.substr(0, 100));
    expect_error(hdr, {"header length"});

    std::string broken = bytes;
    broken[9] = '#';
    const std::string json = test::temp_path("json.safetensors");
    write_all(json, broken);
    expect_error(json, {"header is not valid JSON"});

    std::string overlap = bytes;  // point bn1.weight at conv1.weight's bytes
    const auto at = overlap.find("\"bn1.weight\":{\"data_offsets\":[");
    REQUIRE(at != std::string::npos);
    const auto open = overlap.find('[', at), close = overlap.find(']', at);
    const std::string repl = "[0,256" + std::string(close - open + 1 - 7, ' ') + "]";
    overlap.replace(open, close - open + 1, repl);
    const std::string ov = test::temp_path("overlap.safetensors");
    write_all(ov, overlap);
    expect_error(ov, {"overlap"});
}

TEST_CASE("loader: metadata errors: missing, unknown architecture, unsupported version, bad keys") {
    Fixture f;
    {
        const std::string p = test::temp_path("nometa.safetensors");
        write_safetensors(p, f.tensors, {});
        expect_error(p, {"no softbio metadata"});
    }
    auto doc = nlohmann::json::parse(model_config_to_json(f.cfg));
    auto with = [&](const std::string& name, nlohmann::json d) { return f.write(name, d.dump()); };
    {
        auto d = doc;
        d["format_version"] = 2;
        expect_error(with("ver.safetensors", d), {"unsupported format version 2, this build reads 1"});
    }
    {
        auto d = doc;
        d["model"]["family"] = "vgg";
        expect_error(with("family.safetensors", d), {"unknown architecture \"vgg\""});
    }
    {
        auto d = doc;
        d["model"]["block"] = "dense";
        expect_error(with("block.safetensors", d), {"model.block", "\"dense\""});
    }
    {
        auto d = doc;
        d["heads"][1]["type"] = "ordinal";
        expect_error(with("head.safetensors", d), {"heads[1].type"});
    }
    {
        auto d = doc;
        d["model"].erase("input_size");
        expect_error(with("input.safetensors", d), {"model.input_size: missing"});
    }
    {
        auto d = doc;
        d["trained"] = "yes";
        expect_error(with("trained.safetensors", d), {"trained: expected true or false"});
    }
    {
        auto d = doc;
        d["preprocess"]["steps"][0]["size"] = {100, 100};  // model.input_size is 64x64
        expect_error(with("presize.safetensors", d), {"preprocess", "100x100", "64x64"});
    }
    {
        auto d = doc;
        d["preprocess"]["steps"][0]["op"] = "rotate";
        expect_error(with("preop.safetensors", d), {"preprocess", "rotate"});
    }
    {
        const std::string p = f.write("notjson.safetensors", "{not json");
        expect_error(p, {"metadata is not valid JSON"});
    }
    {
        auto d = doc;
        d["model"]["layers"] = {2, 2, 3, 2};  // the file lacks layer3.2.*
        expect_error(with("layers.safetensors", d), {"tensor layer3.2.conv1.weight is missing"});
    }
}

TEST_CASE("loader: non-finite weights are refused") {
    Fixture f;
    f.data[5][3] = std::nanf("");
    expect_error(f.write("nan.safetensors"), {"non-finite", f.tensors[5].name});
}

namespace {

// A raw safetensors file: 8-byte little-endian header length, the header text, `data`.
std::string raw_safetensors(const std::string& header, const std::string& data = "") {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
    return out + header + data;
}

// Load on another thread; a regression that blocks (a FIFO) fails instead of hanging.
std::string load_error_within(const std::string& path, double seconds) {
    auto result = std::async(std::launch::async, [path] {
        try {
            load_model(path);
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        return std::string();
    });
    if (result.wait_for(std::chrono::duration<double>(seconds)) != std::future_status::ready) {
        FAIL("load_model(" << path << ") did not return within " << seconds << " s");
        std::_Exit(1);  // the blocked thread cannot be joined
    }
    return result.get();
}

}  // namespace

TEST_CASE("loader: hostile metadata: deep nesting, integers past 32 bits, huge sizes") {
    Fixture f;
    {  // 5000 nested arrays where a number belongs: refused by depth, no stack overflow
        const std::string deep = "{\"format_version\": " + std::string(5000, '[') + std::string(5000, ']') + "}";
        expect_error(f.write("deep.safetensors", deep), {"metadata nests deeper than 32 levels"});
    }
    auto doc = nlohmann::json::parse(model_config_to_json(f.cfg));
    auto with = [&](const std::string& name, nlohmann::json d) { return f.write(name, d.dump()); };
    {
        auto d = doc;
        d["format_version"] = 4294967297ull;  // 2^32 + 1: read as 1 if narrowed first
        expect_error(with("ver32.safetensors", d), {"unsupported format version 4294967297"});
    }
    {
        auto d = doc;
        d["model"]["layers"] = {4294967298ull, 2, 2, 2};
        expect_error(with("layers32.safetensors", d), {"model.layers", "1..256"});
    }
    {
        auto d = doc;
        d["model"]["input_size"] = {16384, 16384};
        expect_error(with("huge.safetensors", d), {"model.input_size", "1..4096"});
    }
    {  // a long string of 2-byte characters: the message's cut must not break UTF-8
        auto d = doc;
        std::string s = "x";
        for (int i = 0; i < 40; ++i) s += "\xc3\xa9";  // "é"
        d["model"]["base_width"] = s;
        expect_error(with("utf8.safetensors", d), {"model.base_width: expected an integer in 1..1024, found \"x\xc3\xa9"});
    }
    {
        auto d = doc;
        d["model"]["base_width"] = nlohmann::json::array({nlohmann::json::array({1})});
        expect_error(with("nested.safetensors", d), {"model.base_width", "an array of 1 elements"});
    }
}

TEST_CASE("loader: hostile containers: element-count overflow, NUL in the header, deep header") {
    const std::string dir = test::temp_path("");
    {
        const std::string p = dir + "overflow.safetensors";
        write_all(p, raw_safetensors(R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 1], "data_offsets": [0, 0]}})"));
        expect_error(p, {"tensor w", "more elements than the file has bytes"});
    }
    {
        const std::string p = dir + "nul.safetensors";
        write_all(p, raw_safetensors(std::string("{\"__metadata__\": {\"softbio\": \"x\"}}\0garbage", 42)));
        expect_error(p, {"header holds a NUL byte at offset 34"});
    }
    {
        const std::string p = dir + "deephdr.safetensors";
        write_all(p, raw_safetensors("{\"a\": " + std::string(3000, '[') + std::string(3000, ']') + "}"));
        expect_error(p, {"header nests deeper than 32 levels"});
    }
}

TEST_CASE("loader: not a regular file: a FIFO returns at once, /dev/zero is not read, a symlink loop says so") {
    const std::string fifo = test::temp_path("model.fifo");
    std::remove(fifo.c_str());
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    std::string msg = load_error_within(fifo, 10);
    CHECK(msg.find("not a regular file (a named pipe (FIFO))") != std::string::npos);
    std::remove(fifo.c_str());

    msg = load_error_within("/dev/zero", 10);
    CHECK(msg.find("/dev/zero: not a regular file (a character device)") != std::string::npos);

    const std::string a = test::temp_path("loop_a"), b = test::temp_path("loop_b");
    std::remove(a.c_str()), std::remove(b.c_str());
    REQUIRE(::symlink(b.c_str(), a.c_str()) == 0);
    REQUIRE(::symlink(a.c_str(), b.c_str()) == 0);
    msg = load_error_within(a, 10);
    INFO(msg);
    CHECK(msg.find("a loop of symbolic links") != std::string::npos);
    std::remove(a.c_str()), std::remove(b.c_str());
}

TEST_CASE("loader: BatchNorm statistics that cannot be, and constants that overflow fp32") {
    {
        Fixture f;
        const size_t var = 4;  // conv1.weight, bn1.weight, bn1.bias, bn1.running_mean, bn1.running_var
        REQUIRE(f.tensors[var].name == "bn1.running_var");
        f.data[var][7] = -0.5f;
        expect_error(f.write("negvar.safetensors"), {"tensor bn1.running_var[7] = -0.5 is negative"});
    }
    {
        Fixture f;
        REQUIRE(f.tensors[1].name == "bn1.weight");
        f.data[1][3] = 1e38f;  // gamma / sqrt(var + eps) > FLT_MAX
        f.data[4][3] = 0.0f;
        expect_error(f.write("overflow.safetensors"), {"conv1 (conv1, bn1)", "channel 3", "not a finite fp32 number"});
    }
}

TEST_CASE("loader: finite weights that overflow at run time give a flagged, non-finite head output") {
    Fixture f;
    for (size_t i = 0; i < f.tensors.size(); ++i)
        if (f.tensors[i].shape.size() == 4) std::fill(f.data[i].begin(), f.data[i].end(), 1e30f);
    const std::string p = f.write("inf.safetensors");
    auto model = load_model(p);
    auto ws = model->make_workspace(1);
    std::vector<float> x(64 * 64 * 3, 0.5f);
    model->forward(x.data(), 1, *ws);
    std::vector<std::vector<HeadOutput>> out;
    model->decode(*ws, 1, out);
    for (const auto& h : out[0]) CHECK_FALSE(h.finite);
    std::remove(p.c_str());
}

TEST_CASE("loader: workspace limits: threads and memory are checked before anything is allocated") {
    Fixture f;
    const std::string p = f.write("limits.safetensors");
    auto model = load_model(p);
    CHECK_THROWS_WITH_AS(model->make_workspace(1, 0, 0, 100000), doctest::Contains("at most 256"), Error);
    set_workspace_limit(size_t(1) << 20);  // 1 MiB
    CHECK_THROWS_WITH_AS(model->make_workspace(64), doctest::Contains("MiB, more than the limit of 1 MiB"), Error);
    set_workspace_limit(size_t(4) << 30);
    CHECK_NOTHROW(model->make_workspace(64));
    std::remove(p.c_str());
}
