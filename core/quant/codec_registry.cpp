#include "quant/codec_registry.h"

#include "common/error.h"
#include "quant/codec.h"
#include "quant/codec_factories.h"

namespace quench {
namespace {

// Rows are indexed by CodecId - 1; the static_asserts below keep the order honest.
constexpr std::array<CodecTraits, kCodecCount> kTable = {{
    {CodecId::Rtn, "rtn", "scalar", "Round-to-nearest integer grid, per channel or per group, symmetric or asymmetric",
     false, &rtn_params, &make_rtn_codec, &rtn_examples},
    {CodecId::Gptq, "gptq", "scalar", "GPTQ: Hessian-aware error feedback over any scalar grid (integer or ParetoQ)",
     false, &gptq_params, &make_gptq_codec, &gptq_examples},
    {CodecId::ParetoQ, "paretoq", "scalar",
     "ParetoQ grids: binary, ternary, 2-bit SEQ, 3/4-bit LSQ with per-row scales", true, &paretoq_params,
     &make_paretoq_codec, &paretoq_examples},
    {CodecId::QamW, "qamw", "vector",
     "QAM-W: row norm, block Hadamard, pairs coded on a 2-D Lloyd-Max codebook (or the polar baseline)", false,
     &qamw_params, &make_qamw_codec, &qamw_examples},
    {CodecId::LiftQuant, "liftquant", "vector", "LiftQuant: w ~ M y with y in {+-1}^D, any fractional bit-width D/d",
     true, &liftquant_params, &make_liftquant_codec, &liftquant_examples},
    {CodecId::LcQat, "lcqat", "lattice", "LC-QAT lattice: 4-dim codes in {0..3}^4 through an affine map, Hessian-aware",
     true, &lcqat_params, &make_lcqat_codec, &lcqat_examples},
}};

constexpr bool ids_match_rows() {
    for (int i = 0; i < kCodecCount; ++i)
        if (static_cast<int>(kTable[i].id) != i + 1) return false;
    return true;
}
static_assert(ids_match_rows(), "codec table rows must be in CodecId order");

}  // namespace

const std::array<CodecTraits, kCodecCount>& codec_table() { return kTable; }

const CodecTraits& codec_traits(CodecId id) { return kTable.at(static_cast<int>(id) - 1); }

const CodecTraits* find_codec(const std::string& name) {
    for (const auto& t : kTable)
        if (name == t.name) return &t;
    return nullptr;
}

std::unique_ptr<Codec> make_codec(const CodecSpec& spec) {
    const CodecTraits* t = find_codec(spec.codec());
    if (!t) throw Error("unknown codec '" + spec.codec() + "'");
    return t->make(spec);
}

}  // namespace quench
