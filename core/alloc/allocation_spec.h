#pragma once
// What a bit-allocation problem is made of, as the caller states it: per layer its weight count and the
// measured candidates (codec spec, total bits per weight, predicted cost), the constraints, and a budget.
// Plain data, torch-free, so the CLI, the GUI and the JSON reader all fill the same structs.
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace quench {

struct AllocCandidate {
    std::string spec;            // codec setting, canonical form: "rtn:b=4,g=64", "liftquant:D=19,d=8"
    double bits_per_weight = 0;  // total bits per weight as the codec reports it (codes + scales + ...)
    double extra_bits = 0;       // per-layer bits not in bits_per_weight; 0 = none
    double cost = 0;             // predicted cost of this setting for this layer (its KL contribution)
    // A part stored once per model however many layers use it (LiftQuant's lift matrix, QAM-W's codebook,
    // LC-QAT's affine map): not in bits_per_weight; its shared_bits are paid once, by the first layer that takes
    // a candidate naming this key. Every candidate naming one key must state the same shared_bits. "" = none,
    // the default (so a braced initializer may end before it).
    std::string shared_key = "";
    int64_t shared_bits = 0;
};

struct AllocLayer {
    std::string name;  // HF module name, unique in the problem
    std::string kind;  // layer_kind_name(): "q", "k", "v", "o", "gate", "up", "down", "lm_head"; may be ""
    int block = -1;    // transformer block, for tied_groups_per_block(); -1 when not in a block
    int64_t weights = 0;
    std::vector<AllocCandidate> candidates;
};

struct BitsRange {
    double min_bits_per_weight = 0;
    double max_bits_per_weight = std::numeric_limits<double>::infinity();
};

struct AllocConstraints {
    std::map<std::string, std::string> pins;  // layer name -> candidate spec it must take
    BitsRange limits;                         // every quantized layer's candidates must lie in this range
    std::map<std::string, BitsRange> layer_limits;  // per-layer range, replaces `limits` for that layer
    std::vector<std::vector<std::string>> tied;     // layers that take the same spec; groups sharing a layer merge
    // Layers of these kinds stay at full precision: they take no candidate, cost 0 and count in the budget and
    // in the average at excluded_bits_per_weight (16 for fp16/bf16, 32 for fp32). To leave a layer out of the
    // problem altogether, don't list it.
    std::set<std::string> excluded_kinds;
    double excluded_bits_per_weight = 16;
};

struct AllocationSpec {
    std::vector<AllocLayer> layers;
    AllocConstraints constraints;
};

// A budget in average bits per weight (over every layer of the problem, excluded ones included) or in bytes
// (total bits / 8).
struct Budget {
    enum class Unit { BitsPerWeight, Bytes };
    Unit unit = Unit::BitsPerWeight;
    double value = 0;
    static Budget bits_per_weight(double v) { return {Unit::BitsPerWeight, v}; }
    static Budget bytes(double v) { return {Unit::Bytes, v}; }
};

// Groups of the layers of one block whose kind is in `kinds` ({"q","k","v"} or {"gate","up"}): one group per
// block that has at least two such layers. For AllocConstraints::tied.
std::vector<std::vector<std::string>> tied_groups_per_block(const std::vector<AllocLayer>& layers,
                                                            const std::set<std::string>& kinds);

}  // namespace quench
