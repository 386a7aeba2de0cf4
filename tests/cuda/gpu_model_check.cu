// tests/cuda/gpu_model_check.cu — whole networks on the GPU: correctness against the
// CPU backend, then (with --bench) ResNet-101 timings.
//
//   gpu_model_check            check ResNet-18/50/101 (CUDA vs CPU), exit 77 without a GPU
//   gpu_model_check --bench    also time ResNet-101 (torchvision layout) at 224 and 128,
//                              batch 1 (eager and CUDA graph) and batch 256; one JSON line
//                              per case, for benchmarks/gpu_check.sh
//
// Tolerance (the parity rule of tests/test_model.cpp): max |gpu - cpu| <= 1e-4 x the
// spread of the CPU logits, identical decoded labels.
#define EIGEN_NO_CUDA
#include <softbio/backend/cuda.hpp>
#include <softbio/backend/cuda_graph.hpp>
#include <softbio/model/presets.hpp>
#include <softbio/model/synthetic.hpp>
#include <softbio/softbio.hpp>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using GpuModel = softbio::ResNet<softbio::CudaBackend>;

namespace {

int check_preset(const std::string& preset, int batch) {
    const std::string path = "/tmp/softbio_gpu_" + preset + ".safetensors";
    softbio::write_synthetic_model(path, softbio::preset_config(preset));
    auto cpu = softbio::Model::load(path);
    auto gpu = GpuModel::load(path);
    const int h = cpu->arch().input_h, w = cpu->arch().input_w;
    std::vector<float> x(size_t(batch) * h * w * 3);
    softbio::SplitMix64 rng(5);
    for (auto& v : x) v = float(rng.uniform());
    auto cws = cpu->make_workspace(batch);
    auto gws = gpu->make_workspace(batch);
    cpu->forward(x.data(), batch, *cws);
    softbio::cuda::copy_to_device(gws->input(), x.data(), x.size());
    gpu->forward(gws->input(), batch, *gws);
    std::vector<std::vector<softbio::HeadOutput>> co, go;
    cpu->decode(*cws, batch, co);
    gpu->decode(*gws, batch, go);
    int bad = 0;
    for (size_t i = 0; i < cpu->heads().size(); ++i) {
        float lo = 1e30f, hi = -1e30f, worst = 0;
        for (int n = 0; n < batch; ++n)
            for (size_t k = 0; k < co[n][i].logits.size(); ++k) {
                lo = std::min(lo, co[n][i].logits[k]);
                hi = std::max(hi, co[n][i].logits[k]);
                worst = std::max(worst, std::fabs(co[n][i].logits[k] - go[n][i].logits[k]));
            }
        int label_diff = 0;
        for (int n = 0; n < batch; ++n) label_diff += co[n][i].label != go[n][i].label;
        const bool ok = worst <= 1e-4f * (hi - lo) && label_diff == 0;
        std::printf("%-6s %-18s batch %d head %-8s max|diff| %.3g spread %.3g labels differ %d\n", ok ? "ok" : "FAIL",
                    preset.c_str(), batch, co[0][i].name.c_str(), worst, hi - lo, label_diff);
        bad += !ok;
    }
    std::remove(path.c_str());
    return bad;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void bench(const std::string& path, int size, int batch, bool graph) {
    auto model = GpuModel::load(path);
    auto ws = model->make_workspace(batch, size, size);
    std::vector<float> x(size_t(batch) * size * size * 3, 0.5f);
    softbio::cuda::copy_to_device(ws->input(), x.data(), x.size());
    cudaStream_t s = softbio::cuda::current_stream();
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    std::unique_ptr<softbio::cuda::ForwardGraph> g;
    if (graph) g = std::make_unique<softbio::cuda::ForwardGraph>(*model, *ws, batch);
    auto once = [&] {
        if (g) g->run(s);
        else model->forward(ws->input(), batch, *ws);
    };
    for (int i = 0; i < 5; ++i) once();
    cudaStreamSynchronize(s);
    std::vector<double> ms;
    const int iters = batch == 1 ? 50 : 10;
    for (int i = 0; i < iters; ++i) {
        cudaEventRecord(a, s);
        once();
        cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        float t = 0;
        cudaEventElapsedTime(&t, a, b);
        ms.push_back(t);
    }
    const double med = median(ms);
    std::printf("{\"engine\": \"softbio\", \"size\": %d, \"batch\": %d, \"graph\": %s, \"median_ms\": %.4f, \"img_per_s\": %.1f}\n",
                size, batch, graph ? "true" : "false", med, batch * 1000.0 / med);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    if (softbio::cuda::device_count() == 0) {
        std::printf("SKIPPED: no CUDA device\n");
        return 77;
    }
    const bool do_bench = argc > 1 && std::strcmp(argv[1], "--bench") == 0;
    try {
        int bad = 0;
        bad += check_preset("celeba-r18", 3);
        bad += check_preset("coral-afad", 2);
        bad += check_preset("flagship", 3);
        bad += check_preset("torchvision-r50", 2);
        if (bad) return 1;
        if (do_bench) {
            const std::string path = "/tmp/softbio_gpu_bench_r101.safetensors";
            softbio::write_synthetic_model(path, softbio::preset_config("torchvision-r101"));
            for (int size : {224, 128}) {
                bench(path, size, 1, false);
                bench(path, size, 1, true);
                bench(path, size, 256, false);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gpu_model_check: %s\n", e.what());
        return 1;
    }
    return 0;
}
