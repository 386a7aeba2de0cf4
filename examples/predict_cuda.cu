// examples/predict_cuda.cu — the CUDA backend of softbio-predict (`--device cuda`).
//
// Compiled by nvcc and linked into softbio-predict when CMake finds a CUDA compiler
// (examples/CMakeLists.txt). Including the header registers the CUDA loader in
// softbio::cuda_hooks() when the program starts; predict.cpp itself stays plain C++
// and asks for Device::Cuda through softbio::Predictor. A softbio-predict built without
// this file answers `--device cuda` with "built without softbio's CUDA backend".
#define EIGEN_NO_CUDA  // the CPU engine's headers come along: compile Eigen as host code
#include <softbio/backend/cuda_model.hpp>

// Referenced from nowhere: its initialisation registers the backend (the header's
// inline variable does the same; this one is the program's own, so no linker or
// compiler may drop it).
static const bool softbio_predict_cuda_registered = softbio::cuda::register_cuda_device();
