// The three tiers hold: core includes no Qt and nothing from widgets/ or app/; kernels include neither
// Qt nor LibTorch (a plain C++ API). Checked by reading the sources, as the build graph can't show it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

namespace fs = std::filesystem;

namespace {

std::vector<std::string> offenders(const std::string& dir, const std::regex& bad) {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        const auto ext = e.path().extension();
        if (ext != ".h" && ext != ".cpp" && ext != ".cu" && ext != ".cuh") continue;
        std::ifstream in(e.path());
        std::string line;
        while (std::getline(in, line))
            if (std::regex_search(line, bad)) out.push_back(e.path().string() + ": " + line);
    }
    return out;
}

const std::string kRoot = QUENCH_SOURCE_DIR;

}  // namespace

TEST(Layering, CoreIncludesNoQtAndNoFrontEnd) {
    const std::regex bad(R"(#\s*include\s*[<"](Q[A-Za-z]+|Qt[A-Za-z]*/|widgets/|app/|main_window))");
    EXPECT_GT(std::distance(fs::recursive_directory_iterator(kRoot + "/core"), fs::recursive_directory_iterator()), 20);
    const auto found = offenders(kRoot + "/core", bad);
    EXPECT_TRUE(found.empty()) << found.front();
}

TEST(Layering, KernelsIncludeNeitherQtNorTorch) {
    const std::regex bad(R"(#\s*include\s*[<"](Q[A-Za-z]+|torch/|ATen/|c10/))");
    const auto found = offenders(kRoot + "/kernels", bad);
    EXPECT_TRUE(found.empty()) << found.front();
}
