// Codec speed: seconds and weights per second to quantize a synthetic 4096 x 4096 layer (Llama-2-7B
// attention shape) and every linear layer of a synthetic SmolLM2-135M (30 blocks of seven), per codec
// setting, for 1 and 2 threads. Hessians come from random activations with trained-like channel scales.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "quant/codec.h"
#include "quant/codec_registry.h"

using namespace quench;

namespace {

at::Tensor trained_like(int64_t rows, int64_t cols, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return torch::randn({rows, cols}, gen) * torch::exp(0.35 * torch::randn({rows, cols}, gen)) * 0.02;
}

CalibStats calib_for(int64_t cols, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto x = torch::randn({2048, cols}, gen) * (0.5 + 2.0 * torch::rand({cols}, gen));
    return {x.t().matmul(x) / 2048.0, x.abs().mean(0)};
}

struct Shape {
    int64_t rows, cols;
};

void quantize_shapes(benchmark::State& state, const std::string& spec, const std::vector<Shape>& shapes) {
    at::set_num_threads(static_cast<int>(state.range(0)));
    const auto codec = make_codec(spec);
    std::vector<at::Tensor> ws;
    std::vector<CalibStats> calib;
    int64_t weights = 0;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
        ws.push_back(trained_like(shapes[i].rows, shapes[i].cols, i));
        calib.push_back(calib_for(shapes[i].cols, 100 + i));
        weights += shapes[i].rows * shapes[i].cols;
    }
    for (auto _ : state) {
        try {
            for (std::size_t i = 0; i < ws.size(); ++i)
                benchmark::DoNotOptimize(codec->quantize(ws[i], {&calib[i], 0, nullptr}));
        } catch (const std::exception& e) {
            state.SkipWithError(e.what());
            return;
        }
    }
    state.counters["weights_per_s"] = benchmark::Counter(double(weights) * state.iterations(), benchmark::Counter::kIsRate);
    state.SetLabel(spec + ", " + std::to_string(state.range(0)) + " thread(s)");
}

// SmolLM2's 576 columns are not a multiple of 128, so its groups and Hadamard blocks are 64 wide.
const std::vector<std::string> kLlamaSpecs = {
    "rtn:b=4,g=128", "gptq:b=4,g=128", "paretoq:b=2", "qamw:k=8,block=128", "liftquant:D=16,d=8", "lcqat:b=2",
};
const std::vector<std::string> kSmolSpecs = {
    "rtn:b=4,g=64", "gptq:b=4,g=64", "paretoq:b=2", "qamw:k=8,block=64", "liftquant:D=16,d=8", "lcqat:b=2,had=64",
};

}  // namespace

int main(int argc, char** argv) {
    const std::vector<Shape> llama_layer = {{4096, 4096}};
    // SmolLM2-135M: 30 blocks of q (576x576), k, v (192x576), o (576x576), gate, up (1536x576), down (576x1536).
    std::vector<Shape> smollm;
    for (int block = 0; block < 30; ++block)
        for (Shape s : {Shape{576, 576}, Shape{192, 576}, Shape{192, 576}, Shape{576, 576}, Shape{1536, 576},
                        Shape{1536, 576}, Shape{576, 1536}})
            smollm.push_back(s);
    for (const auto& spec : kLlamaSpecs)
        benchmark::RegisterBenchmark(("Quantize4096x4096/" + spec).c_str(),
                                     [spec, llama_layer](benchmark::State& s) { quantize_shapes(s, spec, llama_layer); })
            ->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
    for (const auto& spec : kSmolSpecs)
        benchmark::RegisterBenchmark(("QuantizeSmolLM2-135M/" + spec).c_str(),
                                     [spec, smollm](benchmark::State& s) { quantize_shapes(s, spec, smollm); })
            ->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
