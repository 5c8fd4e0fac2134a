#pragma once
// The codec traits table: one row per method (name, family, parameter schema, QAT support, factory).
// The CLI's codec list, the GUI's method form and the table-driven tests are all generated from it.
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "quant/codec_spec.h"

namespace quench {

class Codec;

enum class CodecId { Rtn = 1, Gptq, ParetoQ, QamW, LiftQuant, LcQat };
constexpr int kCodecCount = 6;

struct CodecTraits {
    CodecId id;
    const char* name;         // spec prefix: "rtn"
    const char* family;       // "scalar", "vector", "lattice"
    const char* description;  // one line for help texts and tooltips
    bool supports_qat;        // the QAT engine can train it
    const std::vector<ParamDef>& (*params)();
    std::unique_ptr<Codec> (*make)(const CodecSpec&);
    // Settings the tests and the sensitivity sweep use: a few representative specs, from low to high bits.
    const std::vector<std::string>& (*examples)();
};

const std::array<CodecTraits, kCodecCount>& codec_table();
const CodecTraits& codec_traits(CodecId id);
const CodecTraits* find_codec(const std::string& name);  // nullptr when unknown

}  // namespace quench
