// benchmarks/gpu_bench.cu — softbio-gpu-bench: time whole ResNet forward passes on the
// GPU (ResNet<CudaBackend>), eager and as a replayed CUDA graph; and the input pipeline
// of backend/cuda_model.hpp (host pinned staging -> device upload -> forward -> logits
// to the host), synchronous and pipelined.
//
//   softbio-gpu-bench (--model M.safetensors | --preset torchvision-r101 [--model-cache F])
//                     [--cases 224x1,224x256,128x1,128x256] [--iters 20] [--warmup 3]
//                     [--modes eager,graph,sync,pipelined] [--graph-max-batch 1] [--unfused]
//                     [--precision fp32|tf32|fp16|bf16]
//
// Prints one JSON line per (case, mode):
//   {"impl": "softbio", "mode": "eager"|"graph", "size": S, "batch": B, "median_ms": ..., "min_ms": ...,
//    "ms_per_image": ..., "img_per_s": ..., "gflop_per_image": ..., "tflops": ..., "device": "..."}
// Timing: CUDA events on the workspace's stream around each forward (or graph launch),
// each waited for before the next (dev_common.cuh's time_ms), after warm-up;
// the input already sits in the workspace's device buffer (no host-to-device copy is
// timed), as in benchmarks/pytorch_gpu_anchor.py, which times PyTorch the same way.
// Modes "sync" and "pipelined" time a cuda::CudaSession (what Predictor and
// softbio-predict --device cuda run) with the batch already in its pinned staging:
//   sync       submit() + collect() per batch: upload, forward, logits download and
//              decoding one after the other; wall-clock median and minimum per batch;
//   pipelined  batch k+1 submitted before batch k is collected, so its upload overlaps
//              batch k's forward pass; median_ms = min_ms = wall-clock mean per batch
//              over --iters batches in steady state ("timing": "mean").
// pipelined close to eager means the upload is hidden; sync - eager is its cost.
// --precision sets LoadOptions::precision (default fp32). tf32 runs every convolution of the
// network on the tensor cores (CudaBackend: conv2d_tf32); fp16 / bf16 too (conv2d_mma_f32io:
// the filters stored in 16 bits at load, fp32 activations rounded to 16 bits as each conv
// gathers them). A precision that cannot run here (unknown, or refused by require_precision)
// prints {"impl": "softbio", "precision": P, "skipped": "<the reason>"} and exits with 3.
// `--preset` writes a synthetic model of that preset (random weights, softbio/model/
// presets.hpp) once to --model-cache (default /tmp/softbio_<preset>.safetensors).
#define EIGEN_NO_CUDA  // the CPU engine (the loader includes it) as plain host code
#include <softbio/backend/cuda.hpp>
#include <softbio/backend/cuda_graph.hpp>
#include <softbio/backend/cuda_model.hpp>
#include <softbio/io/load.hpp>
#include <softbio/io/synthetic.hpp>
#include <softbio/model/presets.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "dev_common.cuh"  // tests/cuda: skip_without_gpu, time_ms, string_arg

using namespace softbio;
using namespace softbio::cuda::dev;
using GpuModel = ResNet<CudaBackend>;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, sep))
        if (!item.empty()) out.push_back(item);
    return out;
}

/// Wall-clock median and minimum of `iters` calls of f() (after `warmup`), each complete
/// when f returns.
template <class F>
Timing time_wall(F&& f, int iters, int warmup) {
    using Clock = std::chrono::steady_clock;
    for (int i = 0; i < warmup; ++i) f();
    std::vector<double> ms;
    for (int i = 0; i < std::max(1, iters); ++i) {
        const auto t0 = Clock::now();
        f();
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return Timing{ms[ms.size() / 2], ms.front()};
}

/// Steady-state wall-clock mean per batch of the submit/collect pipeline (two in flight).
Timing time_pipelined(cuda::CudaSession& s, int batch, int iters, int warmup) {
    using Clock = std::chrono::steady_clock;
    std::vector<std::vector<HeadOutput>> out;
    auto step = [&] {
        s.submit(batch);
        if (s.in_flight() == DeviceSession::kDepth) s.collect(out);
    };
    for (int i = 0; i < std::max(1, warmup); ++i) step();
    const auto t0 = Clock::now();
    for (int i = 0; i < std::max(1, iters); ++i) step();
    while (s.in_flight() > 0) s.collect(out);
    const double mean = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / std::max(1, iters);
    return Timing{mean, mean};
}

}  // namespace

int main(int argc, char** argv) {
    skip_without_gpu("softbio-gpu-bench");
    const std::string preset = string_arg(argc, argv, "--preset", "");
    std::string model_path = string_arg(argc, argv, "--model", "");
    const std::string cases = string_arg(argc, argv, "--cases", "224x1,224x256,128x1,128x256");
    const std::vector<std::string> modes = split(string_arg(argc, argv, "--modes", "eager,graph"), ',');
    const int iters = int_arg(argc, argv, "--iters", 20), warmup = int_arg(argc, argv, "--warmup", 3);
    const int graph_max_batch = int_arg(argc, argv, "--graph-max-batch", 1);
    LoadOptions opt;
    opt.fold_batchnorm = !flag_arg(argc, argv, "--unfused");
    const std::string precision = string_arg(argc, argv, "--precision", "fp32");
    try {
        opt.precision = parse_precision(precision);
        require_precision(Device::Cuda, opt.precision);
    } catch (const Error& e) {
        std::string why = e.what(), p = precision;
        std::replace(why.begin(), why.end(), '"', '\'');  // stays valid JSON
        std::replace(p.begin(), p.end(), '"', '\'');
        std::printf("{\"impl\": \"softbio\", \"precision\": \"%s\", \"skipped\": \"%s\"}\n", p.c_str(), why.c_str());
        std::fprintf(stderr, "softbio-gpu-bench: %s\n", e.what());
        return 3;
    }
    try {
        if (model_path.empty()) {
            if (preset.empty()) {
                std::fprintf(stderr, "usage: softbio-gpu-bench (--model M | --preset NAME) [--cases SxB,...]\n");
                return 2;
            }
            model_path = string_arg(argc, argv, "--model-cache", "/tmp/softbio_" + preset + ".safetensors");
            struct stat st{};
            if (stat(model_path.c_str(), &st) != 0) {
                std::fprintf(stderr, "# writing synthetic %s to %s\n", preset.c_str(), model_path.c_str());
                write_synthetic_model(model_path, preset_config(preset));
            }
        }
        auto model = load_network<GpuModel>(model_path, opt);
        for (const std::string& c : split(cases, ',')) {
            const auto x = c.find('x');
            const int size = std::stoi(c.substr(0, x)), batch = std::stoi(c.substr(x + 1));
            auto ws = model->make_workspace(batch, size, size);
            const CudaContext& ctx = ws->context();
            cudaDeviceProp prop{};
            SOFTBIO_CUDA_CHECK(cudaGetDeviceProperties(&prop, ctx.device), "cudaGetDeviceProperties");
            const size_t n = size_t(batch) * size * size * model->arch().in_channels;
            std::vector<float> input(n);
            for (size_t i = 0; i < n; ++i) input[i] = float((i * 2654435761u) % 1000) / 1000.0f;
            cuda::copy_to_device(ws->input(), input.data(), n, ctx.stream);
            const double gflop = 2 * model->macs({1, size, size, model->arch().in_channels}) / 1e9;
            for (const std::string& mode : modes) {
                Timing t;
                if (mode == "eager") {
                    t = time_ms([&] { model->forward(ws->input(), batch, *ws); }, ctx.stream, iters, warmup);
                } else if (mode == "graph") {
                    if (batch > graph_max_batch) continue;
                    cuda::ForwardGraph graph(*model, *ws, batch);
                    t = time_ms([&] { graph.run(); }, ctx.stream, iters, warmup);
                } else if (mode == "sync" || mode == "pipelined") {
                    cuda::CudaSession session(model, batch, size, size);
                    // Both staging buffers hold the batch (filled once: the upload is timed,
                    // not the host's writing of the images).
                    std::vector<std::vector<HeadOutput>> out;
                    for (int round = 0; round < DeviceSession::kDepth; ++round) {
                        for (int i = 0; i < batch; ++i)
                            std::copy(input.begin() + ptrdiff_t(n / batch) * i, input.begin() + ptrdiff_t(n / batch) * (i + 1),
                                      session.input_slot(i));
                        session.submit(batch);
                        session.collect(out);
                    }
                    t = mode == "sync" ? time_wall([&] { session.submit(batch), session.collect(out); }, iters, warmup)
                                       : time_pipelined(session, batch, iters, warmup);
                } else {
                    throw Error("unknown mode " + mode);
                }
                std::printf("{\"impl\": \"softbio\", \"mode\": \"%s\", \"size\": %d, \"batch\": %d, \"median_ms\": %.4f, "
                            "\"min_ms\": %.4f, \"ms_per_image\": %.5f, \"img_per_s\": %.1f, \"gflop_per_image\": %.3f, "
                            "\"tflops\": %.2f, \"fold\": %s, \"precision\": \"%s\", \"timing\": \"%s\", \"device\": \"%s\"}\n",
                            mode.c_str(), size, batch, t.median_ms, t.min_ms, t.median_ms / batch,
                            batch / t.median_ms * 1e3, gflop, gflop * batch / t.median_ms,
                            opt.fold_batchnorm ? "true" : "false", precision_name(opt.precision),
                            mode == "pipelined" ? "mean" : mode == "sync" ? "wall" : "events", prop.name);
                std::fflush(stdout);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio-gpu-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
