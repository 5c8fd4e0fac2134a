# The Debian package: `cpack -G DEB` in a build tree makes quench_<version>_<arch>.deb holding quench (the
# workbench), quench-cli, the SentencePiece module, the desktop entry and the icon, installed under /usr.
# Included at the end of the top-level CMakeLists.txt so every install() rule is known.
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "quench")
set(CPACK_PACKAGE_VENDOR "Quench")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "LLM quantization workbench: quantize, measure, allocate bits and export")
set(CPACK_PACKAGE_DESCRIPTION "Quench quantizes the linear layers of Llama-family models with several codecs, \
measures per-layer error, KL divergence and sensitivity, allocates bits under a budget and exports packed, \
Hugging Face and GGUF checkpoints. This package holds the desktop workbench (quench) and the command-line \
tool (quench-cli).")
set(CPACK_PACKAGE_CONTACT "Quench developers <quench@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "science")
# gzip: packs the large statically linked binaries in seconds (xz takes minutes for little gain here).
set(CPACK_DEBIAN_COMPRESSION_TYPE "gzip")
# The dependencies are named rather than found by dpkg-shlibdeps: that walk over LibTorch takes minutes and
# fails for libraries outside dpkg's database (an official LibTorch, CUDA).
# libopenblas0-pthread: without it LibTorch falls back to the reference BLAS, about 20x slower matrix products.
set(QUENCH_DEB_DEPENDS "libopenblas0-pthread, libqt6widgets6, libqt6charts6, libqt6svg6, libhdf5-103-1, libpcre2-8-0, libutf8proc2, libssl3, libsentencepiece0")
if(TORCH_INSTALL_PREFIX STREQUAL "/usr" OR Torch_DIR MATCHES "^/usr/lib/")
  # Debian's libtorch-dev; an official LibTorch given through CMAKE_PREFIX_PATH is the user's to provide.
  string(APPEND QUENCH_DEB_DEPENDS ", libtorch1.13")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${QUENCH_DEB_DEPENDS}")
include(CPack)
