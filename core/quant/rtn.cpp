// RTN: round-to-nearest on an integer grid (scalar_grid.h), one fp16 scale per output channel or per group
// of g columns, symmetric or asymmetric with a b-bit zero code. The baseline other codecs are measured against.
#include "quant/codec_factories.h"
#include "quant/scalar_grid.h"

namespace quench {

const std::vector<ParamDef>& rtn_params() {
    static const std::vector<ParamDef> params = {
        {"b", ParamType::Int, "4", 2, 8, {}, "bits per weight"},
        {"g", ParamType::Int, "128", 0, 0, {"0", "32", "64", "128"},
         "group size in columns sharing one fp16 scale (0 = one per output channel)"},
        {"sym", ParamType::Flag, "0", 0, 0, {},
         "symmetric grid, scale max|w| / (2^(b-1) - 1), no zero point (default: asymmetric, b-bit zero code)"},
    };
    return params;
}

std::unique_ptr<Codec> make_rtn_codec(const CodecSpec& spec) {
    auto grid = make_int_grid(static_cast<int>(spec.get_int("b")), spec.get_flag("sym"));
    return std::make_unique<GroupedGridCodec>(spec, std::move(grid), spec.get_int("g"));
}

const std::vector<std::string>& rtn_examples() {
    static const std::vector<std::string> examples = {"rtn:b=2,g=64", "rtn:b=3,g=128", "rtn:b=4,g=128,sym",
                                                      "rtn:b=8,g=0"};
    return examples;
}

}  // namespace quench
