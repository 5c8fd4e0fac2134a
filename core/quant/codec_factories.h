#pragma once
// What each codec file exports to the traits table: its parameter schema, its factory and example specs.
#include <memory>
#include <string>
#include <vector>

#include "quant/codec_spec.h"

namespace quench {

class Codec;

#define QUENCH_DECLARE_CODEC(prefix)                                 \
    const std::vector<ParamDef>& prefix##_params();                  \
    std::unique_ptr<Codec> make_##prefix##_codec(const CodecSpec&);  \
    const std::vector<std::string>& prefix##_examples();

QUENCH_DECLARE_CODEC(rtn)
QUENCH_DECLARE_CODEC(gptq)
QUENCH_DECLARE_CODEC(paretoq)
QUENCH_DECLARE_CODEC(qamw)
QUENCH_DECLARE_CODEC(liftquant)
QUENCH_DECLARE_CODEC(lcqat)

#undef QUENCH_DECLARE_CODEC

}  // namespace quench
