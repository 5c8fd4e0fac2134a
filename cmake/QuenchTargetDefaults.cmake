# What every Quench target gets: the same warnings, and (for the torch-heavy ones) unity batches.
#
# Warnings: -Wall -Wextra -Wshadow, kept clean. Third-party headers (LibTorch, Qt, HDF5, GoogleTest) come in
# through imported targets as system includes, so only our own code is held to them.
#
# Unity batches: a translation unit that includes LibTorch spends most of its compile time instantiating and
# generating the same inline torch code (measured with -ftime-report on a test file: parsing 8%, template
# instantiation 33%, code generation 59%; the precompiled header saves only the parsing). Compiling a few
# files as one unit does that work once per batch instead of once per file. QUENCH_UNITY_BUILD=OFF builds file
# by file (what a developer iterating on one file may prefer).
option(QUENCH_UNITY_BUILD "Compile the torch-heavy targets in unity batches (faster clean builds)" ON)
option(QUENCH_WERROR "Treat warnings as errors" OFF)

function(quench_target_defaults target)
  cmake_parse_arguments(ARG "" "UNITY_BATCH" "" ${ARGN})
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wshadow>
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${QUENCH_WERROR}>>:-Werror>)
  if(QUENCH_UNITY_BUILD AND ARG_UNITY_BATCH)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE ${ARG_UNITY_BATCH})
  endif()
endfunction()
