// Model runtime benchmarks: load throughput and peak RSS of a synthetic SmolLM2-135M-shaped checkpoint
// (mmap, cold and warm page cache), and forward/perplexity throughput on it and on the real model, for
// 1 and 2 threads. Results and the machine's description go to docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "analysis/model_eval.h"
#include "model/llama_model.h"
#include "model/synthetic.h"

namespace fs = std::filesystem;
using namespace quench;

namespace {

const std::string& synth_dir() {
    static const std::string dir = [] {
        std::string d = (fs::temp_directory_path() / "quench-bench-smollm2-135m").string();
        if (!fs::exists(d + "/config.json")) {
            SynthOptions o;
            o.shape = "smollm2-135m";
            write_synthetic_checkpoint(d, o);
        }
        return d;
    }();
    return dir;
}

uint64_t dir_bytes(const std::string& dir) {
    uint64_t n = 0;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") n += e.file_size();
    return n;
}

// Drops the checkpoint's pages from the page cache so the next load reads the disk.
void evict(const std::string& dir) {
    for (const auto& e : fs::directory_iterator(dir)) {
        int fd = open(e.path().c_str(), O_RDONLY);
        if (fd < 0) continue;
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}

// Loads and touches every weight (a sum reads each page), as a first forward pass would.
double load_and_touch(const std::string& dir) {
    auto m = LlamaModel::load(dir);
    double s = 0;
    for (std::size_t i = 0; i < m->layers().size(); ++i) s += m->weight(i).sum().item<double>();
    return s;
}

void BM_LoadCheckpoint(benchmark::State& state) {
    const bool cold = state.range(0) == 1;
    const std::string& dir = synth_dir();
    const uint64_t bytes = dir_bytes(dir);
    for (auto _ : state) {
        if (cold) {
            state.PauseTiming();
            evict(dir);
            state.ResumeTiming();
        }
        benchmark::DoNotOptimize(load_and_touch(dir));
    }
    state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
    state.SetLabel(cold ? "cold page cache" : "warm page cache");
}
BENCHMARK(BM_LoadCheckpoint)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Peak RSS of a fresh process that loads and touches the model, relative to the checkpoint size.
void BM_LoadPeakRss(benchmark::State& state) {
    const std::string& dir = synth_dir();
    const double bytes = static_cast<double>(dir_bytes(dir));
    double ratio = 0;
    for (auto _ : state) {
        int fds[2];
        if (pipe(fds) != 0) std::abort();
        const pid_t pid = fork();
        if (pid == 0) {
            load_and_touch(dir);
            rusage ru{};
            getrusage(RUSAGE_SELF, &ru);
            const long kib = ru.ru_maxrss;
            if (write(fds[1], &kib, sizeof(kib)) != sizeof(kib)) _exit(1);
            _exit(0);
        }
        long kib = 0;
        if (read(fds[0], &kib, sizeof(kib)) != sizeof(kib)) std::abort();
        waitpid(pid, nullptr, 0);
        close(fds[0]);
        close(fds[1]);
        ratio = kib * 1024.0 / bytes;
    }
    state.counters["peak_rss_over_checkpoint"] = ratio;
    state.counters["checkpoint_MiB"] = bytes / (1 << 20);
}
BENCHMARK(BM_LoadPeakRss)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void run_perplexity(benchmark::State& state, const std::string& dir, int64_t ctx, int64_t windows) {
    at::set_num_threads(static_cast<int>(state.range(0)));
    auto m = LlamaModel::load(dir);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    auto t = torch::randint(m->config().vocab_size, {ctx * windows}, gen).to(torch::kInt);
    std::vector<int32_t> tokens(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + t.numel());
    EvalOptions o;
    o.ctx = ctx;
    o.batch = 1;
    for (auto _ : state) benchmark::DoNotOptimize(evaluate_perplexity({m.get()}, tokens, o, -1).nll_mean);
    state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(ctx * windows) * state.iterations(), benchmark::Counter::kIsRate);
    state.SetLabel(std::to_string(state.range(0)) + " thread(s)");
}

void BM_PerplexitySynthSmolLM2(benchmark::State& state) { run_perplexity(state, synth_dir(), 512, 2); }
BENCHMARK(BM_PerplexitySynthSmolLM2)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PerplexityRealModel(benchmark::State& state) {
    run_perplexity(state, std::string(QUENCH_SHARED_DATA) + "/tinystories-656k", 512, 8);
}
BENCHMARK(BM_PerplexityRealModel)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
