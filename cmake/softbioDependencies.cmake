# The dependencies of the softbio::softbio INTERFACE target, found the same way when
# softbio itself is configured and when a consumer calls find_package(softbio) (this
# file is installed beside softbioConfig.cmake and included by it).
#
#   Eigen 3.4      kernels/cpu/gemm.hpp calls Eigen 3.4 internals (GEBP, the 9-argument
#                  general_matrix_matrix_product::run): 3.3 does not compile.
#   OpenMP         every CPU kernel's thread loop.
#   nlohmann_json  the model file's metadata.
#   stb            softbio/image/*.hpp only (image decoding, stb_image.h). Optional: an
#                  embedder who brings tensors never includes those headers. Found as
#                  <stb/stb_image.h> (Debian's libstb-dev) and exposed as softbio::stb.
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(nlohmann_json 3.2 REQUIRED)
if(NOT TARGET softbio::stb)
  find_path(SOFTBIO_STB_INCLUDE_DIR NAMES stb/stb_image.h DOC "folder holding stb/stb_image.h")
  if(SOFTBIO_STB_INCLUDE_DIR)
    add_library(softbio::stb INTERFACE IMPORTED)
    set_target_properties(softbio::stb PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${SOFTBIO_STB_INCLUDE_DIR}")
  else()
    message(STATUS "softbio: stb/stb_image.h not found: softbio/image/*.hpp (image decoding) will not compile "
                   "(Debian: apt install libstb-dev)")
  endif()
endif()
