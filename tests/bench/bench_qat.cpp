// QAT step time and training throughput (core/qat/qat_trainer.h): block-wise and end-to-end ParetoQ 2-bit
// QAT on the real model (tinystories-656k, all 14 linear layers) and on one synthetic SmolLM2-135M block,
// 1 and 2 threads. The time of an iteration is the trainer's own step time (QatResult::seconds over its
// steps), so PTQ init and export are not counted. Results go to docs/benchmarks.md ("QAT").
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <filesystem>

#include "model/llama_model.h"
#include "model/synthetic.h"
#include "qat/qat_trainer.h"
#include "jobs/model_quantizer.h"

namespace fs = std::filesystem;
using namespace quench;

namespace {

const std::string& synth_block_dir() {
    static const std::string dir = [] {
        std::string d = (fs::temp_directory_path() / "quench-bench-smollm2-135m-1block").string();
        if (!fs::exists(d + "/config.json")) {
            SynthOptions o;
            o.shape = "smollm2-135m";
            o.layers = 1;
            write_synthetic_checkpoint(d, o);
        }
        return d;
    }();
    return dir;
}

std::string real_model() { return std::string(QUENCH_SHARED_DATA) + "/tinystories-656k"; }

void run_qat(benchmark::State& state, const std::string& dir, QatMode mode, int64_t ctx, int64_t batch, int64_t steps) {
    at::set_num_threads(static_cast<int>(state.range(0)));
    auto model = LlamaModel::load(dir);
    const auto layers = model->layers().select_glob("model.layers.*");
    auto ptq = quantize_model_layers(*model, uniform_plan(layers, CodecSpec::parse("paretoq:b=2")), {}, QuantizeOptions());
    // Training text: seeded random ids (throughput does not depend on the text).
    torch::manual_seed(0);
    const at::Tensor ids = torch::randint(0, model->config().vocab_size, {2 * steps * batch * ctx}, torch::kInt);
    const std::vector<int32_t> tokens(ids.data_ptr<int32_t>(), ids.data_ptr<int32_t>() + ids.numel());
    QatOptions o;
    o.mode = mode;
    o.ctx = ctx;
    o.batch = batch;
    o.tokens = steps * batch * ctx;
    o.lr = 1e-3;
    double total = 0;
    int64_t n = 0;
    for (auto _ : state) {
        const QatResult r = train_qat(*model, ptq.tensors, tokens, {}, o);
        const double step = r.seconds / static_cast<double>(r.total_steps);
        state.SetIterationTime(step);
        total += step;
        ++n;
    }
    state.counters["tokens_per_step"] = static_cast<double>(batch * ctx);
    state.counters["tokens_per_s"] = static_cast<double>(batch * ctx * n) / total;
    state.counters["layers"] = static_cast<double>(layers.size());
}

void BM_QatStepRealE2E(benchmark::State& s) { run_qat(s, real_model(), QatMode::EndToEnd, 128, 8, 8); }
void BM_QatStepRealBlock(benchmark::State& s) { run_qat(s, real_model(), QatMode::Block, 128, 8, 8); }
void BM_QatStepSynthSmolLM2BlockE2E(benchmark::State& s) { run_qat(s, synth_block_dir(), QatMode::EndToEnd, 128, 2, 3); }
void BM_QatStepSynthSmolLM2BlockBlock(benchmark::State& s) { run_qat(s, synth_block_dir(), QatMode::Block, 128, 2, 3); }

}  // namespace

BENCHMARK(BM_QatStepRealE2E)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_QatStepRealBlock)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_QatStepSynthSmolLM2BlockE2E)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_QatStepSynthSmolLM2BlockBlock)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(2);

BENCHMARK_MAIN();
