// benchmarks/bench_e2e.cpp — softbio-bench: time whole forward passes of a model.
//
//   softbio-bench --model M.safetensors --batch B [--size S] [--iters N] [--warmup W]
//                 [--threads T] [--unfused] [--precision fp32|bf16]
//                 [--conv-kernel packed|eigen|winograd|auto]
//
// Prints one JSON line: {"ms": [per-call times...], "median_ms": ..., "min_ms": ...,
// "load_ms": ..., "batch": B, "size": S, "threads": T, "precision": P, "conv_kernel": K,
// "gmacs_per_image": ...}. load_ms is load_model's wall time: mapping and checking the
// file, folding BatchNorm, packing every filter. The input is a fixed pseudo-random
// batch; the workspace is planned once, outside the timed loop.
// benchmarks/e2e_compare.py runs this alternately with PyTorch and prints ratios.
#include <softbio/softbio.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Args {
    std::string model_path;
    int batch = 1, size = 0, iters = 10, warmup = 2;
    softbio::LoadOptions opt;
};

// Throws softbio::Error (or std::invalid_argument from stoi) on a bad argument.
Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto next = [&]() {
            if (i + 1 >= argc) throw softbio::Error(arg + " needs a value");
            return std::string(argv[++i]);
        };
        if (arg == "--model") a.model_path = next();
        else if (arg == "--batch") a.batch = std::stoi(next());
        else if (arg == "--size") a.size = std::stoi(next());
        else if (arg == "--iters") a.iters = std::stoi(next());
        else if (arg == "--warmup") a.warmup = std::stoi(next());
        else if (arg == "--threads") softbio::set_num_threads(std::stoi(next()));
        else if (arg == "--unfused") a.opt.fold_batchnorm = false;
        else if (arg == "--precision") a.opt.precision = softbio::parse_precision(next());
        else if (arg == "--conv-kernel") a.opt.conv_kernel = softbio::parse_conv_kernel(next());
        else throw softbio::Error("unknown argument " + arg);
    }
    if (a.iters < 1 || a.batch < 1) throw softbio::Error("--iters and --batch must be at least 1");
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    try {
        args = parse_args(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio-bench: %s\nusage: softbio-bench --model M --batch B [--size S] [--iters N] "
                             "[--warmup W] [--threads T] [--unfused] [--precision fp32|bf16] "
                             "[--conv-kernel packed|eigen|winograd|auto]\n", e.what());
        return 2;
    }
    const int batch = args.batch, size = args.size, iters = args.iters, warmup = args.warmup;
    const softbio::LoadOptions& opt = args.opt;
    try {
        const auto l0 = std::chrono::steady_clock::now();
        auto model = softbio::load_model(args.model_path, opt);
        const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - l0).count();
        auto ws = model->make_workspace(batch, size, size);
        const size_t n = size_t(batch) * ws->input_h() * ws->input_w() * model->arch().in_channels;
        for (size_t i = 0; i < n; ++i) ws->input()[i] = float((i * 2654435761u) % 1000) / 1000.0f;
        std::vector<double> ms;
        for (int i = 0; i < warmup + iters; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            model->forward(ws->input(), batch, *ws);
            const auto t1 = std::chrono::steady_clock::now();
            if (i >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
        std::vector<double> sorted = ms;
        std::sort(sorted.begin(), sorted.end());
        const double median = sorted[sorted.size() / 2];
        std::printf("{\"ms\": [");
        for (size_t i = 0; i < ms.size(); ++i) std::printf("%s%.3f", i ? ", " : "", ms[i]);
        std::printf("], \"median_ms\": %.3f, \"min_ms\": %.3f, \"load_ms\": %.1f, \"batch\": %d, \"size\": %d, "
                    "\"threads\": %d, \"precision\": \"%s\", \"conv_kernel\": \"%s\", \"gmacs_per_image\": %.4f}\n",
                    median, sorted.front(), load_ms, batch, ws->input_h(), ws->context().threads,
                    softbio::precision_name(opt.precision), softbio::conv_kernel_name(opt.conv_kernel),
                    model->macs({1, ws->input_h(), ws->input_w(), model->arch().in_channels}) / 1e9);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
