// quench-cli synth --shape NAME --out DIR: a synthetic checkpoint of a real model's shape.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common/error.h"
#include "model/synthetic.h"
#include "output.h"

namespace quench::cli {

Command add_synth_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("synth", "Write a synthetic HF checkpoint of a real model's shape (seeded random weights)");
    struct Opts {
        SynthOptions s;
        std::string out, dtype = "f32";
        int64_t shard_mb = 0;
    };
    auto o = std::make_shared<Opts>();
    std::string shapes;
    for (const auto& s : synthetic_shapes()) shapes += (shapes.empty() ? "" : ", ") + s;
    sub->add_option("--shape", o->s.shape, "One of: " + shapes)->required();
    sub->add_option("--layers", o->s.layers, "Transformer blocks (default: the real model's count)")->check(CLI::NonNegativeNumber);
    sub->add_option("--dtype", o->dtype, "f32, f16 or bf16")->check(CLI::IsMember({"f32", "f16", "bf16"}));
    sub->add_option("--seed", o->s.seed, "Random seed");
    sub->add_option("--shard-mb", o->shard_mb, "Split into shards of about this many MiB (0: one file)")->check(CLI::NonNegativeNumber);
    sub->add_option("--out", o->out, "Output directory")->required();
    return {sub, [o, &g] {
                o->s.dtype = o->dtype == "f32" ? DType::F32 : o->dtype == "f16" ? DType::F16 : DType::BF16;
                o->s.shard_bytes = o->shard_mb * 1024 * 1024;
                StderrProgress progress(g.quiet || g.json);
                write_synthetic_checkpoint(o->out, o->s, &progress);
                const ModelConfig c = synthetic_config(o->s.shape);
                if (g.json)
                    std::cout << nlohmann::json{{"out", o->out}, {"shape", o->s.shape}, {"dtype", o->dtype},
                                                {"layers", o->s.layers ? o->s.layers : c.num_hidden_layers}}
                                     .dump(2)
                              << "\n";
                else
                    std::cout << "wrote " << o->s.shape << " (" << (o->s.layers ? o->s.layers : c.num_hidden_layers)
                              << " layers, " << o->dtype << ") to " << o->out << "\n";
            }};
}

}  // namespace quench::cli
