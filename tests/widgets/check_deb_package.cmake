# ctest script: runs `cpack -G DEB` in the build tree and checks, with dpkg-deb, that the package is named
# quench, depends on the pthread OpenBLAS and holds the workbench, the CLI, the desktop entry and the icon under
# /usr.
# Usage: cmake -DCPACK=<cpack> -DBUILD_DIR=<build tree> -P check_deb_package.cmake
execute_process(COMMAND ${CPACK} -G DEB WORKING_DIRECTORY ${BUILD_DIR}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cpack -G DEB failed (${rc}):\n${out}\n${err}")
endif()
string(REGEX MATCH "package: ([^\n]*\\.deb) generated" m "${out}")
set(deb "${CMAKE_MATCH_1}")
if(NOT EXISTS "${deb}")
  message(FATAL_ERROR "cpack reported no .deb:\n${out}")
endif()
execute_process(COMMAND dpkg-deb -f ${deb} Package OUTPUT_VARIABLE package OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT package STREQUAL "quench")
  message(FATAL_ERROR "${deb}: Package is '${package}', expected 'quench'")
endif()
# Without the pthread OpenBLAS, LibTorch falls back to the reference BLAS (about 20x slower matrix products).
execute_process(COMMAND dpkg-deb -f ${deb} Depends OUTPUT_VARIABLE depends OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT depends MATCHES "(^|, )libopenblas0-pthread(,|$)")
  message(FATAL_ERROR "${deb}: Depends '${depends}' lacks libopenblas0-pthread")
endif()
execute_process(COMMAND dpkg-deb -c ${deb} OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dpkg-deb -c ${deb} failed")
endif()
foreach(path ./usr/bin/quench ./usr/bin/quench-cli ./usr/share/applications/quench.desktop
             ./usr/share/icons/hicolor/scalable/apps/quench.svg)
  string(REGEX MATCH " ${path}\n" found "${listing}\n")
  if(NOT found)
    message(FATAL_ERROR "${deb} lacks ${path}; it holds:\n${listing}")
  endif()
endforeach()
message(STATUS "${deb}: quench, quench-cli, desktop entry and icon present")
