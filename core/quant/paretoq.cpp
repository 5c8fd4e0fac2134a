// ParetoQ's grids (Liu et al., arXiv 2502.02631; facebookresearch/ParetoQ) as post-training quantization:
// binary, ternary, 2-bit SEQ and 3/4-bit LSQ with one fp16 alpha per output row, initialised as the
// reference initialises QAT (levels and inits in scalar_grid.h); the QAT engine trains alpha from there.
#include "quant/codec_factories.h"
#include "quant/scalar_grid.h"

namespace quench {

const std::vector<ParamDef>& paretoq_params() {
    static const std::vector<ParamDef> params = {
        {"b", ParamType::Real, "2", 0, 0, {"1", "1.58", "2", "3", "4"},
         "bits per weight: 1 binary, 1.58 ternary (stored 5 trits per byte, 1.6 bits), 2 SEQ, 3 or 4 LSQ"},
    };
    return params;
}

std::unique_ptr<Codec> make_paretoq_codec(const CodecSpec& spec) {
    return std::make_unique<GroupedGridCodec>(spec, make_paretoq_grid(spec.get_real("b"), spec.to_string()), /*g=*/0);
}

const std::vector<std::string>& paretoq_examples() {
    static const std::vector<std::string> examples = {"paretoq:b=1", "paretoq:b=1.58", "paretoq:b=2", "paretoq:b=3",
                                                      "paretoq:b=4"};
    return examples;
}

}  // namespace quench
