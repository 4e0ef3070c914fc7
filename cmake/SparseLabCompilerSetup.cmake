# Compiler settings shared by every SparseLab target: warnings, ccache.
find_program(SPARSELAB_CCACHE ccache)
if(SPARSELAB_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${SPARSELAB_CCACHE}")
endif()

add_library(sparselab_warnings INTERFACE)
add_library(sparselab::warnings ALIAS sparselab_warnings)
target_compile_options(sparselab_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wno-unused-parameter>
  $<$<AND:$<BOOL:${SPARSELAB_WERROR}>,$<CXX_COMPILER_ID:GNU,Clang>>:-Werror>)
