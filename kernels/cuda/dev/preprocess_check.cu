// kernels/cuda/dev/preprocess_check.cu — check and time the device-side ToTensor +
// Normalize (kernels/cuda/preprocess.cuh).
//
// Build: tests/cuda/CMakeLists.txt builds it as softbio-cuda-preprocess-check; by hand, from
// the repository root:
//   nvcc -std=c++17 -O3 -arch=sm_90 -Iinclude -Itests/cuda kernels/cuda/dev/preprocess_check.cu -o preprocess_check
// Run:  ./preprocess_check [--iters 50]
//
// Correctness: bit-identical to the CPU formula of softbio/image/preprocess.hpp (test::to_tensor_reference)
// (float(v) / 255, then (x - mean) / std, each an fp32 operation rounded to nearest), for
// every byte value and channel, with padded row and image strides. Speed: GB/s over
// bytes read + floats written (memory-bound: 5 bytes per element).
// Exit code 77 without a GPU.
#define EIGEN_NO_CUDA  // host_helpers.hpp includes the CPU engine: compile Eigen as plain host code
#include <cstdio>

#include "dev_common.cuh"
#include "host_helpers.hpp"

using namespace softbio;
using namespace softbio::cuda::dev;
namespace sc = softbio::cuda;

int main(int argc, char** argv) {
    skip_without_gpu("preprocess_check");
    const int iters = int_arg(argc, argv, "--iters", 50);
    Checker chk;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
    try {
        const CudaContext ctx = sc::make_context();
        for (int batch : {1, 256})
            for (int size : {128, 224}) {
                const size_t row = size_t(size) * 3 + 16, image = row * size + 64;  // padded strides
                std::vector<std::uint8_t> src(image * batch);
                for (size_t i = 0; i < src.size(); ++i) src[i] = std::uint8_t((i * 2654435761u) >> 24);
                auto d_src = to_device(src);
                sc::DeviceBuffer d_dst(size_t(batch) * size * size * 3);
                for (bool normalize : {false, true}) {
                    poison(d_dst);
                    auto run = [&] {
                        sc::to_tensor_u8(d_src.data(), batch, size, size, row, image, normalize ? mean : nullptr,
                                         normalize ? stdv : nullptr, d_dst.data(), ctx);
                    };
                    run();
                    const auto ref = test::to_tensor_reference(src.data(), batch, size, size, row, image,
                                                               normalize ? mean : nullptr, normalize ? stdv : nullptr);
                    char what[96];
                    std::snprintf(what, sizeof what, "%s batch %d %dx%d", normalize ? "to_tensor+normalize" : "to_tensor",
                                  batch, size, size);
                    chk.expect(same_values(to_host(d_dst), ref), what);
                    const double ms = time_ms(run, ctx.stream, iters).median_ms;
                    std::printf("%-36s %8.4f ms  %7.1f GB/s\n", what, ms, 5.0 * d_dst.size() / ms / 1e6);
                }
            }
    } catch (const std::exception& e) {
        std::printf("FAIL: exception: %s\n", e.what());
        return 1;
    }
    return chk.finish("preprocess_check");
}
