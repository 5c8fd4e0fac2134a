#include "model/hidden_states.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "common/scratch_file.h"

namespace quench {
namespace {

std::string batch_shape_text(at::IntArrayRef s) {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

}  // namespace

HiddenStates::HiddenStates(int64_t memory_cap, std::string dir) : memory_cap_(memory_cap), dir_(std::move(dir)) {}
HiddenStates::~HiddenStates() = default;

void HiddenStates::append(const at::Tensor& batch) {
    const at::Tensor b = batch.to(at::kFloat).contiguous();
    Slot s;
    s.shape = b.sizes().vec();
    const int64_t n = static_cast<int64_t>(b.nbytes());
    if (resident_bytes_ + n <= memory_cap_) {
        s.resident = b.is_same(batch) ? b.clone() : b;  // never alias the caller's tensor
        resident_bytes_ += n;
    } else {
        if (!file_) file_ = std::make_unique<ScratchFile>("quench-hidden", dir_);
        s.offset = static_cast<std::size_t>(file_bytes_);
        write_slot(s, b);
        file_bytes_ += n;
    }
    slots_.push_back(std::move(s));
}

at::Tensor HiddenStates::get(std::size_t i) const {
    const Slot& s = slots_.at(i);
    if (s.resident.defined()) return s.resident;
    at::Tensor out = at::empty(s.shape, at::kFloat);
    file_->read_at(s.offset, out.data_ptr(), out.nbytes(), "hidden states");
    return out;
}

void HiddenStates::set(std::size_t i, const at::Tensor& batch) {
    Slot& s = slots_.at(i);
    if (!batch.sizes().equals(s.shape))
        throw Error("hidden states: batch " + std::to_string(i) + " has shape " + batch_shape_text(s.shape) + ", not " +
                    batch_shape_text(batch.sizes()));
    const at::Tensor b = batch.to(at::kFloat).contiguous();
    if (s.resident.defined()) s.resident = b.is_same(batch) ? b.clone() : b;
    else write_slot(s, b);
}

void HiddenStates::write_slot(const Slot& s, const at::Tensor& batch) {
    file_->write_at(s.offset, batch.data_ptr(), batch.nbytes(), "hidden states");
}

}  // namespace quench
