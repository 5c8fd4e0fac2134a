#include "qat/qat_checkpoint.h"

#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"

namespace quench {
namespace {

constexpr int64_t kCheckpointVersion = 1;
const char* const kCheckpointName = "qat-checkpoint.pt";

at::Tensor string_tensor(const std::string& s) {
    at::Tensor t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
    std::memcpy(t.data_ptr(), s.data(), s.size());
    return t;
}
std::string tensor_string(const at::Tensor& t) {
    const at::Tensor c = t.contiguous();
    return std::string(static_cast<const char*>(c.data_ptr()), static_cast<std::size_t>(c.numel()));
}

template <typename T>
at::Tensor vec_tensor(const std::vector<T>& v, c10::ScalarType type) {
    return torch::tensor(std::vector<T>(v), torch::TensorOptions().dtype(type)).clone();
}
template <typename T>
std::vector<T> tensor_vec(const at::Tensor& t) {
    const at::Tensor c = t.contiguous();
    return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

std::string param_key(std::size_t layer, const QatParam& p) { return "param." + std::to_string(layer) + "." + p.name; }

}  // namespace

std::string qat_checkpoint_path(const std::string& checkpoint_dir) { return checkpoint_dir + "/" + kCheckpointName; }

std::string qat_signature(const QatOptions& o, const std::map<std::size_t, QuantizedTensor>& ptq, int64_t total_steps) {
    std::ostringstream s;
    s << "mode=" << static_cast<int>(o.mode) << " steps=" << total_steps << " ctx=" << o.ctx << " batch=" << o.batch
      << " lr=" << o.lr << " scale_lr=" << o.scale_lr << " wd=" << o.weight_decay << " sched=" << static_cast<int>(o.schedule)
      << " warmup=" << o.warmup << " decay=" << o.decay << " min=" << o.min_lr_ratio << " clip=" << o.clip_norm
      << " ce=" << o.ce_weight << " kl=" << o.kl_weight << " seed=" << o.seed << " lsq2=" << o.layer.paretoq_lsq2;
    // Block-wise runs before 2026-12-07 gave each block other windows; their checkpoints must not resume.
    if (o.mode == QatMode::Block) s << " windows=shared";
    for (const auto& [layer, t] : ptq) s << " " << layer << ":" << t.spec.to_string();
    return s.str();
}

void save_qat_checkpoint(const std::string& dir, const std::string& signature, int64_t done, const QatResult& curve,
                         const std::map<std::size_t, std::unique_ptr<QatLayer>>& layers, torch::optim::Optimizer& opt) {
    std::filesystem::create_directories(dir);
    torch::serialize::OutputArchive ar;
    ar.write("version", torch::tensor(kCheckpointVersion));
    ar.write("signature", string_tensor(signature));
    ar.write("step", torch::tensor(done));
    ar.write("tokens_used", torch::tensor(curve.tokens_used));
    for (const auto& [layer, l] : layers)
        for (const auto& p : l->params()) ar.write(param_key(layer, p), p.tensor.detach());
    torch::serialize::OutputArchive opt_ar;
    opt.save(opt_ar);
    ar.write("optimizer", opt_ar);
    ar.write("curve.blocks", vec_tensor(curve.blocks, torch::kLong));
    ar.write("curve.losses", vec_tensor(curve.losses, torch::kDouble));
    ar.write("curve.lrs", vec_tensor(curve.lrs, torch::kDouble));
    ar.write("kl.steps", vec_tensor(curve.kl_steps, torch::kLong));
    ar.write("kl.values", vec_tensor(curve.kl_values, torch::kDouble));
    std::ostringstream bytes;
    ar.save_to(bytes);
    write_file_atomic(qat_checkpoint_path(dir), bytes.str());
}

int64_t load_qat_checkpoint(const std::string& dir, const std::string& signature, QatResult& curve,
                            const std::map<std::size_t, std::unique_ptr<QatLayer>>& layers,
                            const std::function<torch::optim::Optimizer*(int64_t done)>& optimizer_for) {
    const std::string path = qat_checkpoint_path(dir);
    if (dir.empty() || !std::filesystem::exists(path)) return 0;
    torch::serialize::InputArchive ar;
    // Each read into a fresh tensor: InputArchive::read into a defined tensor re-points its storage. A
    // missing entry is a damaged (or foreign) file, reported by its name.
    auto read = [&](const std::string& name) {
        at::Tensor t;
        try {
            ar.read(name, t);
        } catch (const c10::Error&) {
            throw Error(path + ": " + name + ": missing or unreadable");
        }
        return t;
    };
    try {
        ar.load_from(path);
    } catch (const c10::Error&) {
        throw Error(path + ": not a readable QAT checkpoint");
    }
    const int64_t version = read("version").item<int64_t>();
    if (version != kCheckpointVersion)
        throw Error(path + ": version " + std::to_string(version) + ", this build reads version " +
                    std::to_string(kCheckpointVersion));
    const std::string saved = tensor_string(read("signature"));
    if (saved != signature)
        throw Error(path + ": signature: the checkpoint belongs to a run with other options or layers (" + saved + ")");
    const int64_t done = read("step").item<int64_t>();
    curve.tokens_used = read("tokens_used").item<int64_t>();
    {
        torch::NoGradGuard no_grad;
        for (const auto& [layer, l] : layers)
            for (const auto& p : l->params()) {
                const at::Tensor saved_p = read(param_key(layer, p));
                if (!saved_p.sizes().equals(p.tensor.sizes()))
                    throw Error(path + ": " + param_key(layer, p) + ": shape differs from the layer's");
                p.tensor.copy_(saved_p);
            }
    }
    curve.blocks = tensor_vec<int64_t>(read("curve.blocks"));
    curve.losses = tensor_vec<double>(read("curve.losses"));
    curve.lrs = tensor_vec<double>(read("curve.lrs"));
    curve.kl_steps = tensor_vec<int64_t>(read("kl.steps"));
    curve.kl_values = tensor_vec<double>(read("kl.values"));
    curve.steps.clear();
    for (std::size_t i = 0; i < curve.losses.size(); ++i) curve.steps.push_back(static_cast<int64_t>(i) + 1);
    if (torch::optim::Optimizer* opt = optimizer_for(done)) {
        torch::serialize::InputArchive opt_ar;
        try {
            ar.read("optimizer", opt_ar);
            opt->load(opt_ar);
        } catch (const c10::Error&) {
            throw Error(path + ": optimizer: missing or unreadable");
        }
    }
    return done;
}

}  // namespace quench
