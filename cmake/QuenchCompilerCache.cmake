# Use ccache when present: CI and developers rebuild the same torch-heavy translation units often.
find_program(QUENCH_CCACHE ccache)
if(QUENCH_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER ${QUENCH_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${QUENCH_CCACHE})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${QUENCH_CCACHE})
  # Precompiled headers and ccache only cooperate with these sloppiness settings.
  set(ENV{CCACHE_SLOPPINESS} "pch_defines,time_macros,include_file_mtime,include_file_ctime")
endif()
