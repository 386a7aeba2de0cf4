// minimal.cpp — the smallest complete use of softbio: load a model, predict one image.
//   minimal MODEL.safetensors IMAGE
#include <softbio/predictor.hpp>

#include <cstdio>

int main(int argc, char** argv) {
    if (argc != 3) return std::fprintf(stderr, "usage: minimal MODEL.safetensors IMAGE\n"), 2;
    try {
        softbio::Predictor predictor(argv[1]);                       // weights loaded once, mmap'ed
        softbio::Prediction result = predictor.predict_file(argv[2]);  // decode, preprocess, forward
        if (!predictor.trained()) std::printf("(untrained weights: not a real prediction)\n");
        for (const softbio::HeadOutput& head : result.heads) {
            if (head.has_value) std::printf("%s: %g (rank %d)\n", head.name.c_str(), head.value, head.label);
            else std::printf("%s: %s (p = %.3f)\n", head.name.c_str(), head.class_name.c_str(), head.confidence());
        }
    } catch (const softbio::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
