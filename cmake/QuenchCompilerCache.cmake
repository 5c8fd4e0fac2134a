# Use ccache when present: CI and developers rebuild the same torch-heavy translation units often.
# Its settings travel on each compile command (cmake -E env), because a variable set here would reach only
# the configure step, not the compiler ninja runs later. Precompiled headers are cacheable only with the
# sloppiness below (ccache's manual, "Precompiled headers"), and a base directory makes paths inside the
# source tree relative, so a second checkout (CI's clean clone) hits the cache the first one filled.
find_program(QUENCH_CCACHE ccache)
if(QUENCH_CCACHE)
  set(QUENCH_CCACHE_LAUNCHER ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      CCACHE_BASEDIR=${PROJECT_SOURCE_DIR} ${QUENCH_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${QUENCH_CCACHE_LAUNCHER})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${QUENCH_CCACHE_LAUNCHER})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${QUENCH_CCACHE_LAUNCHER})
endif()
