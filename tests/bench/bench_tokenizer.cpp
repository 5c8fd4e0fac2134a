// Tokenizer throughput on the texts the tokenizer tests round-trip (tests/core/model/test_tokenizer_hf.cpp,
// test_tokenizer_sentencepiece.cpp): Hugging Face tokenizer.json BPE (Qwen3's byte-level vocabulary and the
// real model's SentencePiece-style one) and Llama 2's SentencePiece model through libsentencepiece. "cold":
// a freshly loaded tokenizer per iteration (load not timed), so the BPE word cache starts empty; "warm": the
// same tokenizer encodes the text again, every word already cached. bytes_per_second is the input text.
// Results and the machine's description go to docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "model/tokenizer.h"

using namespace quench;

namespace {

std::string shared(const std::string& rel) { return std::string(QUENCH_SHARED_DATA) + "/" + rel; }

const char* kWikiText2 = "wikitext-2/wikitext-2-raw-v1.test.joined.lf.txt";
const char* kTinyStories = "tinystories-valid/tinystories_val.eval.txt";

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

// tokenizer: a model folder (load_tokenizer) or a SentencePiece .model file.
std::unique_ptr<Tokenizer> load(const std::string& tokenizer) {
    const std::string path = shared(tokenizer);
    return std::filesystem::is_directory(path) ? load_tokenizer(path) : load_sentencepiece_model(path);
}

bool have(benchmark::State& state, const std::string& tokenizer, const std::string& text) {
    for (const std::string& rel : {tokenizer, text})
        if (!std::filesystem::exists(shared(rel))) {
            state.SkipWithError(("missing shared data: " + shared(rel)).c_str());
            return false;
        }
    return true;
}

void report(benchmark::State& state, std::size_t bytes, std::size_t tokens) {
    state.SetBytesProcessed(int64_t(bytes) * state.iterations());
    state.counters["tokens"] = double(tokens);
    state.counters["tokens_per_s"] = benchmark::Counter(double(tokens) * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_EncodeCold(benchmark::State& state, const std::string& tokenizer, const std::string& text_file) {
    if (!have(state, tokenizer, text_file)) return;
    const std::string text = read_file(shared(text_file));
    std::size_t tokens = 0;
    for (auto _ : state) {
        state.PauseTiming();
        std::unique_ptr<Tokenizer> tok = load(tokenizer);
        state.ResumeTiming();
        const std::vector<int32_t> ids = tok->encode(text, true);
        tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
        state.PauseTiming();
        tok.reset();
        state.ResumeTiming();
    }
    report(state, text.size(), tokens);
}

void BM_EncodeWarm(benchmark::State& state, const std::string& tokenizer, const std::string& text_file) {
    if (!have(state, tokenizer, text_file)) return;
    const std::string text = read_file(shared(text_file));
    const std::unique_ptr<Tokenizer> tok = load(tokenizer);
    std::size_t tokens = tok->encode(text, true).size();
    for (auto _ : state) {
        const std::vector<int32_t> ids = tok->encode(text, true);
        tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    report(state, text.size(), tokens);
}

void BM_Decode(benchmark::State& state, const std::string& tokenizer, const std::string& text_file) {
    if (!have(state, tokenizer, text_file)) return;
    const std::string text = read_file(shared(text_file));
    const std::unique_ptr<Tokenizer> tok = load(tokenizer);
    const std::vector<int32_t> ids = tok->encode(text, true);
    for (auto _ : state) {
        const std::string back = tok->decode(ids);
        benchmark::DoNotOptimize(back.data());
    }
    report(state, text.size(), ids.size());
}

#define TOKENIZER_BENCH(fn, name, tokenizer, text) \
    BENCHMARK_CAPTURE(fn, name, tokenizer, text)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0)

TOKENIZER_BENCH(BM_EncodeCold, qwen3_wikitext2, "qwen3-tokenizer", kWikiText2);
TOKENIZER_BENCH(BM_EncodeWarm, qwen3_wikitext2, "qwen3-tokenizer", kWikiText2);
TOKENIZER_BENCH(BM_Decode, qwen3_wikitext2, "qwen3-tokenizer", kWikiText2);
TOKENIZER_BENCH(BM_EncodeCold, qwen3_tinystories, "qwen3-tokenizer", kTinyStories);
TOKENIZER_BENCH(BM_EncodeCold, tinystories656k_tinystories, "tinystories-656k", kTinyStories);
TOKENIZER_BENCH(BM_EncodeCold, llama2_sentencepiece_tinystories, "llama2-tokenizer/tokenizer.model", kTinyStories);
TOKENIZER_BENCH(BM_EncodeCold, llama2_sentencepiece_wikitext2, "llama2-tokenizer/tokenizer.model", kWikiText2);
TOKENIZER_BENCH(BM_Decode, llama2_sentencepiece_wikitext2, "llama2-tokenizer/tokenizer.model", kWikiText2);

}  // namespace

BENCHMARK_MAIN();
