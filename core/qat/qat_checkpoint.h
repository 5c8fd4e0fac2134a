#pragma once
// The file that lets a QAT run survive being killed (qat/qat_trainer.cpp saves it every checkpoint_every
// steps and on cancel): the completed step, every trained parameter, the optimizer state and the curves so
// far, under a signature of the run's options and layers so that a checkpoint never resumes another run.
// Written atomically (common/atomic_file.h) and versioned; LibTorch's archive format inside.
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "qat/qat_layer.h"
#include "qat/qat_trainer.h"

namespace quench {

// What identifies a run to resume: every option that changes the trajectory, and each layer's PTQ spec.
std::string qat_signature(const QatOptions& o, const std::map<std::size_t, QuantizedTensor>& ptq, int64_t total_steps);

// Saves a checkpoint after `done` steps in qat_checkpoint_path(dir): the layers' parameters, the optimizer's
// state and curve's per-step records and held-out KL (its steps are implied by the losses). Throws
// quench::Error when it cannot be written; an earlier checkpoint then stays as it was.
void save_qat_checkpoint(const std::string& dir, const std::string& signature, int64_t done, const QatResult& curve,
                         const std::map<std::size_t, std::unique_ptr<QatLayer>>& layers, torch::optim::Optimizer& opt);

// Loads the checkpoint in dir when there is one, into the layers' parameters and curve. Returns the completed
// steps (0 without a checkpoint). The optimizer state is read into optimizer_for(done) unless that returns
// nullptr (a checkpoint taken at a block boundary starts a fresh optimizer). Throws quench::Error naming the
// file for an unreadable file, another version or another run's signature.
int64_t load_qat_checkpoint(const std::string& dir, const std::string& signature, QatResult& curve,
                            const std::map<std::size_t, std::unique_ptr<QatLayer>>& layers,
                            const std::function<torch::optim::Optimizer*(int64_t done)>& optimizer_for);

}  // namespace quench
