// benchmarks/bench_face_nets.cpp — face-api's networks (model/faceapi_*.hpp) as
// bench_kernels entries: the tiny face detector on one 416 x 416 input (face-api's
// default size) and the age/gender network on one 112 x 112 face, forward() only
// (preprocessing excluded), with 1 and 2 threads. The weights are the converted files
// in data/models (SOFTBIO_DATA_DIR); the input is a fixed pattern in the normalised range.
//
//   build/benchmarks/bench_kernels --benchmark_filter=face
#include <benchmark/benchmark.h>

#include <softbio/io/load_face.hpp>

#include <string>

namespace {

const std::string kModels = std::string(SOFTBIO_DATA_DIR) + "/models/";

void fill_input(float* p, size_t n) {
    for (size_t i = 0; i < n; ++i) p[i] = float((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
}

void BM_face_detector_416(benchmark::State& st) {
    static const auto det = softbio::load_face_detector(kModels + "faceapi_tiny_face_detector.safetensors");
    auto ws = det->make_workspace(1, 416, int(st.range(0)));
    fill_input(ws->input(), size_t(416) * 416 * 3);
    for (auto _ : st) {
        det->forward(ws->input(), 1, *ws);
        benchmark::DoNotOptimize(det->grid(*ws)[0]);
    }
    st.counters["GMAC/s"] = benchmark::Counter(det->macs({1, 416, 416, 3}) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_face_age_gender(benchmark::State& st) {
    static const auto ag = softbio::load_face_age_gender(kModels + "faceapi_age_gender.safetensors");
    auto ws = ag->make_workspace(1, int(st.range(0)));
    fill_input(ws->input(), size_t(112) * 112 * 3);
    for (auto _ : st) {
        ag->forward(ws->input(), 1, *ws);
        benchmark::DoNotOptimize(ag->ages(*ws)[0]);
    }
}

void BM_face_landmarks(benchmark::State& st) {
    static const auto lm = softbio::load_face_landmarks(kModels + "faceapi_landmark68.safetensors");
    auto ws = lm->make_workspace(1, int(st.range(0)));
    fill_input(ws->input(), size_t(112) * 112 * 3);
    for (auto _ : st) {
        lm->forward(ws->input(), 1, *ws);
        benchmark::DoNotOptimize(lm->landmarks(*ws)[0]);
    }
}

}  // namespace

BENCHMARK(BM_face_detector_416)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_face_landmarks)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_face_age_gender)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
