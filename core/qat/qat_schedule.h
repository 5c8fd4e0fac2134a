#pragma once
// What QAT trains on and at which rate, apart from the training itself (qat/qat_trainer.cpp): the seeded
// window order, the learning-rate schedule and the token budgets users type.
#include <cstdint>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "qat/qat_trainer.h"

namespace quench {

// The training windows in a seeded order, reshuffled every epoch (Fisher-Yates over splitmix64, so the
// order is the same on every platform and needs no generator state in checkpoints).
class WindowOrder {
public:
    WindowOrder(int64_t n, uint64_t seed) : n_(n), seed_(seed) {}
    int64_t at(int64_t k) {
        const int64_t epoch = k / n_;
        if (epoch != epoch_) {
            perm_.resize(static_cast<std::size_t>(n_));
            for (int64_t i = 0; i < n_; ++i) perm_[static_cast<std::size_t>(i)] = i;
            uint64_t s = seed_ * 1000003ull + static_cast<uint64_t>(epoch);
            for (int64_t i = n_ - 1; i > 0; --i)
                std::swap(perm_[static_cast<std::size_t>(i)],
                          perm_[static_cast<std::size_t>(splitmix64_next(s) % static_cast<uint64_t>(i + 1))]);
            epoch_ = epoch;
        }
        return perm_[static_cast<std::size_t>(k % n_)];
    }

private:
    int64_t n_;
    uint64_t seed_;
    int64_t epoch_ = -1;
    std::vector<int64_t> perm_;
};

// The learning rate at `step` of `total` as a fraction of the peak: linear warm-up, then cosine to
// min_lr_ratio or constant with a linear decay at the end (QatOptions).
double schedule_factor(const QatOptions& o, int64_t step, int64_t total);

}  // namespace quench
