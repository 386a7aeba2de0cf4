// tests/fuzz/fuzz_safetensors.cpp — libFuzzer target: the safetensors container and the
// softbio metadata document (io/safetensors.hpp, io/metadata.hpp, io/preprocess_json.hpp).
//
// The input is a whole file. SafetensorsFile must either refuse it with a ModelFileError
// or hand back tensors whose byte ranges lie inside the mapping, match dtype x shape and
// do not overlap; every tensor byte is then read (an out-of-range pointer faults or is
// reported). When __metadata__.softbio is present, parse_model_config must either refuse
// it with a ModelFileError or return a configuration that survives a round trip:
// model_config_to_json -> parse_model_config -> model_config_to_json gives the same text.
// Any other exception (nlohmann's, std::out_of_range, ...) escapes and libFuzzer reports
// it as a crash; AddressSanitizer and UndefinedBehaviorSanitizer watch everything else.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <softbio/io/metadata.hpp>
#include <softbio/io/safetensors.hpp>

#include "fuzz_util.hpp"

namespace {

void check_container(const softbio::SafetensorsFile& st) {
    const auto mapping = st.mapping();
    const uint8_t* lo = mapping->data();
    const uint8_t* hi = lo + mapping->size();
    std::vector<std::pair<size_t, size_t>> ranges;
    unsigned sum = 0;
    for (const auto& [name, t] : st.tensors()) {
        SOFTBIO_FUZZ_CHECK(t.begin <= t.end);
        size_t count = 1;
        for (int64_t d : t.shape) {
            SOFTBIO_FUZZ_CHECK(d >= 0);
            count *= size_t(d);  // cannot overflow: the parser bounded it by the file size
        }
        SOFTBIO_FUZZ_CHECK(softbio::dtype_size(t.dtype) != 0);
        SOFTBIO_FUZZ_CHECK(count * softbio::dtype_size(t.dtype) == t.end - t.begin);
        if (t.end == t.begin) continue;
        const uint8_t* p = st.bytes(t);
        SOFTBIO_FUZZ_CHECK(lo != nullptr && p >= lo && p + (t.end - t.begin) <= hi);
        for (size_t i = 0; i < t.end - t.begin; ++i) sum += p[i];
        ranges.push_back({t.begin, t.end});
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i) SOFTBIO_FUZZ_CHECK(ranges[i].first >= ranges[i - 1].second);
    volatile unsigned sink = sum;
    (void)sink;
}

void check_metadata(const std::string& path, const std::string& document) {
    softbio::ModelConfig cfg;
    try {
        cfg = softbio::parse_model_config(path, document);
    } catch (const softbio::ModelFileError&) {
        return;  // refused cleanly
    }
    // Accepted: what the writer makes of it must be accepted again, unchanged.
    const std::string once = softbio::model_config_to_json(cfg);
    softbio::ModelConfig again;
    try {
        again = softbio::parse_model_config(path, once);
    } catch (const softbio::ModelFileError& e) {
        std::fprintf(stderr, "round trip refused: %s\ndocument written: %s\n", e.what(), once.c_str());
        softbio_fuzz::violated("parse_model_config(model_config_to_json(cfg)) refuses what parse_model_config accepted");
    }
    const std::string twice = softbio::model_config_to_json(again);
    if (once != twice) {
        std::fprintf(stderr, "first:  %s\nsecond: %s\n", once.c_str(), twice.c_str());
        softbio_fuzz::violated("model_config_to_json is not stable under a parse round trip");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static softbio_fuzz::MemFile file;
    const std::string& path = file.write(data, size);
    std::string document;
    bool has_document = false;
    try {
        softbio::SafetensorsFile st(path);
        check_container(st);
        auto it = st.metadata().find("softbio");
        if (it != st.metadata().end()) {
            document = it->second;
            has_document = true;
        }
    } catch (const softbio::ModelFileError&) {
        return 0;
    }
    if (has_document) check_metadata(path, document);
    return 0;
}
