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

// Which core folders each folder may include, lowest first. A new include against it fails here with the
// file and line; move the code to the folder its dependencies argue for instead.
const std::map<std::string, std::set<std::string>> kAllowed = {
    {"common", {}},
    {"jobs", {"common"}},
    {"alloc", {"common"}},
    {"model", {"common", "jobs"}},
    {"quant", {"common", "jobs", "model"}},
    {"qat", {"common", "jobs", "model", "quant"}},
    {"analysis", {"common", "jobs", "alloc", "model", "quant"}},
    {"io", {"common", "jobs", "alloc", "model", "quant", "analysis"}},
    {"plugins", {"model"}},
};

// Known upward includes, each to go when the orchestration above the codecs moves up (issue 18): the
// packed-checkpoint loading behind LlamaModel::load, the synthetic-checkpoint writer, the model quantizer's
// capture and metrics, the packed runtime's reader. Not to be extended.
const std::set<std::string> kKnownUpward = {
    "model/llama_model.cpp -> io/packed_loader.h",
    "model/synthetic.cpp -> io/safetensors_writer.h",
    "quant/model_quantizer.h -> analysis/layer_capture.h",
    "quant/model_quantizer.h -> analysis/layer_metrics.h",
    "quant/packed_model.cpp -> io/packed_checkpoint.h",
    "quant/packed_model.cpp -> io/packed_loader.h",
};

TEST(Layering, CoreFoldersDependOneWay) {
    const std::regex inc(R"re(#\s*include\s*"([a-z_]+)/([A-Za-z0-9_./]+)")re");
    const fs::path core = kRoot + "/core";
    std::vector<std::string> bad;
    std::set<std::string> seen_known;
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
            const std::string edge = rel.generic_string() + " -> " + m[1].str() + "/" + m[2].str();
            if (kAllowed.at(from).count(m[1].str())) continue;
            if (kKnownUpward.count(edge)) {
                seen_known.insert(edge);
                continue;
            }
            bad.push_back("core/" + rel.generic_string() + ":" + std::to_string(n) + ": " + line);
        }
    }
    EXPECT_GT(edges, 100);  // the scan saw the real include graph
    EXPECT_TRUE(bad.empty()) << bad.size() << " upward includes, first: " << bad.front();
    // A known exception that is gone must leave the list, so that it cannot come back unnoticed.
    for (const auto& k : kKnownUpward) EXPECT_TRUE(seen_known.count(k)) << "no longer needed: " << k;
}
