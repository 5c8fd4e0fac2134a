// The three tiers hold: core includes no Qt and nothing from widgets/ or app/; kernels include neither
// Qt nor LibTorch (a plain C++ API). Inside core, folders depend one way (the table below). Checked by
// reading the sources, as the build graph can't show it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>

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

// Which core folders each folder may include, lowest first: common (errors, files, hashes, progress) <- alloc
// (the budget solver, pure numbers) and model (checkpoints, tokenizers, the forward pass) <- quant (codecs,
// packing) <- analysis (measuring a model: windows, capture, perplexity, KL, sensitivity measurements) and
// qat (trainable codec layers and the trainer) <- io (files: run store, exporters, packed checkpoints, model loading) <- runtime
// (the packed kernels behind a model) <- jobs (what the front ends run: quantize, sensitivity, sweep, records).
// A new include against it fails here with the file and line; move the code to the folder its dependencies
// argue for instead.
const std::map<std::string, std::set<std::string>> kAllowed = {
    {"common", {}},
    {"alloc", {"common"}},
    {"model", {"common"}},
    {"quant", {"common", "model"}},
    {"analysis", {"common", "model", "quant"}},
    {"qat", {"common", "model", "quant"}},
    {"io", {"common", "alloc", "model", "analysis", "quant"}},
    {"runtime", {"common", "alloc", "model", "quant", "analysis", "qat", "io"}},
    {"jobs", {"common", "alloc", "model", "analysis", "quant", "qat", "io", "runtime"}},
    {"plugins", {"common", "model"}},
};

TEST(Layering, TheTableIsOneWay) {
    // Allowed includes are transitive downward: a folder may include what its dependencies may, never itself.
    for (const auto& [folder, allowed] : kAllowed)
        for (const auto& dep : allowed) {
            ASSERT_TRUE(kAllowed.count(dep)) << folder << " -> " << dep;
            EXPECT_FALSE(kAllowed.at(dep).count(folder)) << folder << " <-> " << dep;
            for (const auto& below : kAllowed.at(dep)) EXPECT_TRUE(allowed.count(below)) << folder << " -> " << below;
        }
}

TEST(Layering, CoreFoldersDependOneWay) {
    const std::regex inc(R"re(#\s*include\s*"([a-z_]+)/([A-Za-z0-9_./]+)")re");
    const fs::path core = kRoot + "/core";
    std::vector<std::string> bad;
    int edges = 0;
    for (const auto& e : fs::recursive_directory_iterator(core)) {
        const auto ext = e.path().extension();
        if (ext != ".h" && ext != ".cpp") continue;
        const fs::path rel = fs::relative(e.path(), core);
        const std::string from = rel.begin()->string();
        ASSERT_TRUE(kAllowed.count(from)) << "core/" << from << " is a folder the layering table does not list";
        std::ifstream in(e.path());
        std::string line;
        for (int n = 1; std::getline(in, line); ++n) {
            std::smatch m;
            if (!std::regex_search(line, m, inc) || !kAllowed.count(m[1].str()) || m[1].str() == from) continue;
            ++edges;
            if (kAllowed.at(from).count(m[1].str())) continue;
            bad.push_back("core/" + rel.generic_string() + ":" + std::to_string(n) + ": " + line);
        }
    }
    EXPECT_GT(edges, 100);  // the scan saw the real include graph
    EXPECT_TRUE(bad.empty()) << bad.size() << " upward includes, first: " << bad.front();
}
