#pragma once
// Hand-built sensitivity measurements shaped like a real model's, for the chart and layout tests.
#include <cmath>
#include <string>
#include <vector>

#include "jobs/sensitivity.h"
#include "quant/codec_spec.h"

namespace quench::gui::test {

// blocks x {q,k,v,o,gate,up,down} layers, each with the given candidate bit widths; KL falls by about 4x per
// extra bit and differs per layer so that the allocation is not uniform. KL is measured on every second
// candidate, the others carry only the proxy, as a proxy-mode run leaves them.
inline quench::Measurements syntheticMeasurements(int blocks, const std::vector<int>& bits) {
    static const char* kinds[] = {"q", "k", "v", "o", "gate", "up", "down"};
    quench::Measurements m;
    for (int b = 0; b < blocks; ++b) {
        for (int k = 0; k < 7; ++k) {
            quench::SensitivityLayer l;
            l.block = b;
            l.kind = kinds[k];
            l.name = "model.layers." + std::to_string(b) + (k < 4 ? ".self_attn." : ".mlp.") + kinds[k] + "_proj";
            l.out_features = k >= 4 ? 256 : 128;
            l.in_features = 128;
            m.add_layer(l);
            const double sens = (1.0 + b) * (k == 6 ? 3.0 : 1.0) * (k == 1 ? 0.5 : 1.0);
            for (size_t c = 0; c < bits.size(); ++c) {
                quench::SensitivityPoint p;
                p.layer = l.name;
                p.spec = quench::CodecSpec::parse((bits[c] >= 4 ? "gptq:b=" : "rtn:b=") + std::to_string(bits[c]) + ",g=32")
                             .to_string();
                p.bits_per_weight = bits[c] + 0.5;
                p.code_bits_per_weight = bits[c];
                p.output_rel_error = 0.3 * std::pow(0.25, bits[c]);
                p.has_kl = c % 2 == 0;
                p.kl = sens * 0.01 * std::pow(0.25, bits[c] - 2);
                p.proxy_kl = sens * 0.011 * std::pow(0.25, bits[c] - 2);
                m.set(p);
            }
        }
    }
    return m;
}

}  // namespace quench::gui::test
