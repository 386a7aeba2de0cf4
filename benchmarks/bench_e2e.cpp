// benchmarks/bench_e2e.cpp — softbio-bench: time whole forward passes of a model.
//
//   softbio-bench --model M.safetensors --batch B [--size S] [--iters N] [--warmup W]
//                 [--threads T] [--unfused]
//
// Prints one JSON line: {"ms": [per-call times...], "median_ms": ..., "min_ms": ...,
// "batch": B, "size": S, "threads": T, "gmacs_per_image": ...}. The input is a fixed
// pseudo-random batch; the workspace is planned once, outside the timed loop.
// benchmarks/e2e_compare.py runs this alternately with PyTorch and prints ratios.
#include <softbio/softbio.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    std::string model_path;
    int batch = 1, size = 0, iters = 10, warmup = 2;
    softbio::LoadOptions opt;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string("0"); };
        if (a == "--model") model_path = next();
        else if (a == "--batch") batch = std::stoi(next());
        else if (a == "--size") size = std::stoi(next());
        else if (a == "--iters") iters = std::stoi(next());
        else if (a == "--warmup") warmup = std::stoi(next());
        else if (a == "--threads") softbio::set_num_threads(std::stoi(next()));
        else if (a == "--unfused") opt.fold_batchnorm = false;
        else {
            std::fprintf(stderr, "usage: softbio-bench --model M --batch B [--size S] [--iters N] [--warmup W] [--threads T]\n");
            return 2;
        }
    }
    try {
        auto model = softbio::load_model(model_path, opt);
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
        std::printf("], \"median_ms\": %.3f, \"min_ms\": %.3f, \"batch\": %d, \"size\": %d, \"threads\": %d, "
                    "\"gmacs_per_image\": %.4f}\n",
                    median, sorted.front(), batch, ws->input_h(), ws->context().threads,
                    model->macs({1, ws->input_h(), ws->input_w(), model->arch().in_channels}) / 1e9);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
