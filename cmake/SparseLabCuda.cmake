# CUDA support (docs/gpu.md).
#
# SPARSELAB_TORCH_HAS_CUDA — the LibTorch found is CUDA-enabled (the official download or the one
#   inside a PyTorch installation, given with CMAKE_PREFIX_PATH). Debian's LibTorch is CPU only.
# SPARSELAB_HAVE_CUDA_KERNELS — core/cuda is compiled with nvcc into sparselab_cuda_kernels
#   (SPARSELAB_CUDA_KERNELS=AUTO builds it whenever an nvcc is found, also next to a CPU
#   LibTorch, so CI compiles the kernels without a GPU; the default compiler is
#   /usr/local/cuda/bin/nvcc; architectures CMAKE_CUDA_ARCHITECTURES, default 80;90).
# SPARSELAB_CUDA_SOLVER — both: the solver dispatches CUDA tensors to the kernels
#   (compile definition SPARSELAB_CUDA_SOLVER=1 on sparselab_core).

set(SPARSELAB_TORCH_HAS_CUDA OFF)
if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda)
  set(SPARSELAB_TORCH_HAS_CUDA ON)
endif()

set(SPARSELAB_HAVE_CUDA_KERNELS OFF)
if(NOT SPARSELAB_CUDA_KERNELS STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(SPARSELAB_HAVE_CUDA_KERNELS ON)
  elseif(SPARSELAB_CUDA_KERNELS STREQUAL "ON")
    message(FATAL_ERROR "SPARSELAB_CUDA_KERNELS=ON but no CUDA compiler was found "
                        "(set CMAKE_CUDA_COMPILER, e.g. /usr/local/cuda/bin/nvcc)")
  endif()
endif()

set(SPARSELAB_CUDA_SOLVER OFF)
if(SPARSELAB_HAVE_CUDA_KERNELS AND SPARSELAB_TORCH_HAS_CUDA)
  set(SPARSELAB_CUDA_SOLVER ON)
endif()

if(SPARSELAB_HAVE_CUDA_KERNELS)
  if(NOT CMAKE_CUDA_COMPILER_LAUNCHER AND SPARSELAB_CCACHE)
    set(CMAKE_CUDA_COMPILER_LAUNCHER "${SPARSELAB_CCACHE}")
  endif()
  # Hand-written kernels: raw device pointers and streams, no LibTorch.
  file(GLOB SPARSELAB_CUDA_SOURCES CONFIGURE_DEPENDS
    "${CMAKE_SOURCE_DIR}/core/cuda/*.cu" "${CMAKE_SOURCE_DIR}/core/cuda/*.cuh")
  add_library(sparselab_cuda_kernels STATIC ${SPARSELAB_CUDA_SOURCES})
  add_library(sparselab::cuda_kernels ALIAS sparselab_cuda_kernels)
  target_include_directories(sparselab_cuda_kernels PUBLIC "${CMAKE_SOURCE_DIR}/core")
  target_link_libraries(sparselab_cuda_kernels PUBLIC CUDA::cudart)
  # No FMA contraction anywhere (the kernels also spell every rounding step out), IEEE
  # division and square root: the kernels must round like the CPU column loop.
  target_compile_options(sparselab_cuda_kernels PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false --prec-div=true --prec-sqrt=true
      -Xcompiler=-Wall,-Wextra --Werror=all-warnings>)
  set_target_properties(sparselab_cuda_kernels PROPERTIES POSITION_INDEPENDENT_CODE ON
    CUDA_SEPARABLE_COMPILATION OFF
    CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF)
endif()
