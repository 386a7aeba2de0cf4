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
#
# A machine without these -dev packages (the bare GPU machine of benchmarks/gpu_check.sh)
# uses copies in third_party/ (git-ignored), made on a machine that has them by
# scripts/vendor_headers.sh: each package is looked for on the system first, and only
# when it is missing there, in third_party/ (a message says so). Installed, this file has
# no third_party/ beside it and finds everything on the system as before.
get_filename_component(_softbio_vendor "${CMAKE_CURRENT_LIST_DIR}/../third_party" ABSOLUTE)
macro(_softbio_find_package package version debian)
  if(NOT ${package}_FOUND)
    find_package(${package} ${version} QUIET CONFIG)
  endif()
  if(NOT ${package}_FOUND AND EXISTS "${_softbio_vendor}")
    find_package(${package} ${version} QUIET CONFIG PATHS "${_softbio_vendor}" NO_DEFAULT_PATH)
    if(${package}_FOUND)
      message(STATUS "softbio: ${package} from the vendored copy ${${package}_DIR} (scripts/vendor_headers.sh)")
    endif()
  endif()
  if(NOT ${package}_FOUND AND NOT "${debian}" STREQUAL "")
    message(FATAL_ERROR "softbio needs ${package} ${version}: install it (Debian: apt install ${debian}), or run "
                        "scripts/vendor_headers.sh on a machine that has it and bring third_party/ along")
  endif()
endmacro()
_softbio_find_package(Eigen3 3.4 libeigen3-dev)
find_package(OpenMP REQUIRED COMPONENTS CXX)
_softbio_find_package(nlohmann_json 3.2 nlohmann-json3-dev)
# doctest is for softbio's own tests (tests/CMakeLists.txt finds it again, REQUIRED): found
# here only when the system lacks it and third_party/ has it, so that the tests' lookup
# succeeds through doctest_DIR.
if(EXISTS "${_softbio_vendor}/lib/cmake/doctest")
  _softbio_find_package(doctest "" "")
endif()
if(NOT TARGET softbio::stb)
  find_path(SOFTBIO_STB_INCLUDE_DIR NAMES stb/stb_image.h PATHS "${_softbio_vendor}/include"
            DOC "folder holding stb/stb_image.h (searched last: third_party/include, scripts/vendor_headers.sh)")
  if(SOFTBIO_STB_INCLUDE_DIR)
    add_library(softbio::stb INTERFACE IMPORTED)
    set_target_properties(softbio::stb PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${SOFTBIO_STB_INCLUDE_DIR}")
  else()
    message(STATUS "softbio: stb/stb_image.h not found: softbio/image/*.hpp (image decoding) will not compile "
                   "(Debian: apt install libstb-dev; or scripts/vendor_headers.sh)")
  endif()
endif()
