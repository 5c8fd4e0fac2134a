#pragma once
// Paths the tests read: the shared data folder (never copied into the repo) and a per-test scratch dir.
#include <filesystem>
#include <string>

namespace quench::test {

inline std::string shared_data(const std::string& rel) { return std::string(QUENCH_SHARED_DATA) + "/" + rel; }
inline std::string real_model_dir() { return shared_data("tinystories-656k"); }
// The TinyStories validation text in two parts: one to calibrate or train on, one to evaluate on.
inline std::string train_text() { return shared_data("tinystories-valid/tinystories_val.train.txt"); }
inline std::string eval_text() { return shared_data("tinystories-valid/tinystories_val.eval.txt"); }

// A fresh empty directory under the system temp dir, removed when the object dies.
class ScratchDir {
public:
    ScratchDir();
    ~ScratchDir();
    const std::filesystem::path& path() const { return path_; }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

}  // namespace quench::test
