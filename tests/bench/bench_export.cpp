// Export benchmarks: time, size and memory of the three exporters (packed, hf f16, gguf) on a synthetic
// SmolLM2-135M-shaped checkpoint stored in BF16 (as the real model ships), with every block linear layer
// quantized by rtn at 2, 3 and 4 bits (g=64: SmolLM2's 576 columns are not a multiple of 128). The source
// checkpoint is written once per process; each bit width is quantized once, outside the timed region; each
// export is timed alone (Iterations(1), manual time) and its output removed afterwards.
//
// Counters: seconds, bytes (the weights file: model.safetensors or the .gguf; config.json and the tokenizer
// are the same for every format), MB_per_s (10^6 bytes of output per second); packed adds file/ideal
// (PackedWriteReport::ideal_bytes(): quantized params x total bpw / 8 + the tensors copied as stored) and
// the header bytes; gguf adds how many tensors fell back from the type gguf_type_for_codec asked for.
// Memory: maxrss_before/after_MiB are getrusage's max RSS just before and just after the export, with the
// high-water mark reset through /proc/self/clear_refs (and free heap returned by malloc_trim) right before
// it, so peak_growth_MiB is what the export itself held at its peak beyond the loaded, quantized model
// (peak_reset 0: the kernel refused the reset and the numbers are the process's sticky high-water mark).
// For scale: the model holds about 1 GiB (fp32 weights converted from BF16, plus the dequantized block
// weights); a second copy would add 400-540 MiB. Non-layer tensors are re-read from the BF16 checkpoint
// and converted to fp32 one at a time, so the embedding (28M values, 108 MiB in fp32) bounds the growth.
// A table goes to stderr at the end; results belong in docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "io/gguf_export.h"
#include "io/hf_export.h"
#include "io/packed_checkpoint.h"
#include "model/llama_model.h"
#include "model/synthetic.h"
#include "quant/codec_spec.h"
#include "jobs/model_quantizer.h"

namespace fs = std::filesystem;
using namespace quench;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// ---- memory -------------------------------------------------------------------------------------------

double maxrss_mib() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

// Resets the RSS high-water mark (VmHWM, which getrusage's ru_maxrss reports) to the current RSS
// (Linux >= 4.0); false where /proc/self/clear_refs is not writable.
bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    if (!out) return false;
    out << "5";
    out.flush();
    return static_cast<bool>(out);
}

// ---- the model, quantized once per bit width ----------------------------------------------------------

struct Fixture {
    std::string root, src;
    std::unique_ptr<LlamaModel> model;
    std::vector<std::size_t> block_layers;
    int bits = 0;
    QuantizeResult quant;
    std::string spec;

    Fixture() {
        root = (fs::temp_directory_path() / ("quench-bench-export-" + std::to_string(::getpid()))).string();
        fs::remove_all(root);
        fs::create_directories(root);
        src = root + "/src";
        SynthOptions o;
        o.shape = "smollm2-135m";
        o.dtype = DType::BF16;
        const auto t0 = std::chrono::steady_clock::now();
        write_synthetic_checkpoint(src, o);
        model = LlamaModel::load(src);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (std::size_t i = 0; i < model->layers().size(); ++i)
            if (model->layers().at(i).block >= 0) block_layers.push_back(i);
        std::fprintf(stderr, "synthetic smollm2-135m (BF16, %lld params, %zu block linear layers) written and loaded "
                             "in %.1f s; max RSS %.0f MiB\n",
                     static_cast<long long>(model->num_params()), block_layers.size(), s, maxrss_mib());
    }
    ~Fixture() {
        model.reset();
        std::error_code ec;
        fs::remove_all(root, ec);
    }

    void quantize(int b) {
        if (bits == b) return;
        quant = QuantizeResult{};
        model->restore_all();
        spec = "rtn:b=" + std::to_string(b) + ",g=64";
        const auto t0 = std::chrono::steady_clock::now();
        quant = quantize_model_layers(*model, uniform_plan(block_layers, CodecSpec::parse(spec)), {}, QuantizeOptions{});
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        bits = b;
        std::fprintf(stderr, "quantized %zu layers with %s in %.1f s (untimed): %.4f bits per weight; max RSS %.0f MiB\n",
                     quant.tensors.size(), spec.c_str(), s, quant.total_bits_per_weight(), maxrss_mib());
    }
};

Fixture& fixture() {
    static Fixture f;
    return f;
}

// ---- one export ---------------------------------------------------------------------------------------

struct Row {
    std::string format;
    int bits = 0;
    double seconds = 0, mib = 0;
    bool packed = false;
    double overhead_pct = 0, peak_growth_mib = 0;
    std::string note;
};
std::vector<Row>& rows() {
    static std::vector<Row> r;
    return r;
}

struct Measure {
    double seconds = 0, maxrss_before = 0, maxrss_after = 0;
    bool reset = false;
};

// Returns free heap memory to the system first (so the RSS before is the live set, not what the allocator
// kept from the quantization), then resets the high-water mark, so getrusage's max RSS after the export is
// the export's own peak.
template <typename F>
Measure measure(F&& export_once) {
    Measure m;
    malloc_trim(0);
    m.reset = reset_peak_rss();
    m.maxrss_before = maxrss_mib();
    const auto t0 = std::chrono::steady_clock::now();
    export_once();
    m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    m.maxrss_after = maxrss_mib();
    return m;
}

void set_common(benchmark::State& state, const Measure& m, uint64_t bytes) {
    state.counters["seconds"] = m.seconds;
    state.counters["bytes"] = static_cast<double>(bytes);
    state.counters["MB_per_s"] = static_cast<double>(bytes) / 1e6 / m.seconds;
    state.counters["maxrss_before_MiB"] = m.maxrss_before;
    state.counters["maxrss_after_MiB"] = m.maxrss_after;
    state.counters["peak_growth_MiB"] = m.maxrss_after - m.maxrss_before;
    state.counters["peak_reset"] = m.reset ? 1 : 0;
}

void BM_Export(benchmark::State& state, const std::string& format, int bits) {
    Fixture& f = fixture();
    f.quantize(bits);
    const std::string out = f.root + (format == "gguf" ? "/out.gguf" : "/out-" + format);
    Row row;
    row.format = format;
    row.bits = bits;
    for (auto _ : state) {
        fs::remove_all(out);
        Measure m;
        uint64_t bytes = 0;
        if (format == "packed") {
            PackedWriteReport r;
            m = measure([&] { r = write_packed_checkpoint(*f.model, f.quant.tensors, out); });
            bytes = r.file_bytes;
            const double ratio = static_cast<double>(r.file_bytes) / r.ideal_bytes();
            state.counters["ideal_bytes"] = r.ideal_bytes();
            state.counters["file_over_ideal"] = ratio;
            state.counters["header_bytes"] = static_cast<double>(r.header_bytes);
            state.counters["total_bpw"] = r.total_bits_per_weight();
            row.packed = true;
            row.overhead_pct = 100.0 * (ratio - 1.0);
            std::ostringstream note;
            note << "header " << r.header_bytes / 1024 << " KiB, parts/bits "
                 << static_cast<double>(r.part_bytes) / (static_cast<double>(r.quantized_bits) / 8.0) << ", "
                 << (ratio <= 1.01 ? "within 1%" : "OVER 1%");
            row.note = note.str();
        } else if (format == "hf") {
            HfExportReport r;
            m = measure([&] { r = export_hf_dequantized(*f.model, out, DType::F16); });
            bytes = r.file_bytes;
            row.note = std::to_string(r.tensors) + " tensors f16" + (r.tied ? ", tied embedding" : "");
        } else {
            GgufExportOptions o;
            o.name = "smollm2-135m-synth";
            for (const auto& [index, q] : f.quant.tensors)
                o.tensor_types[gguf_tensor_name(f.model->layers().at(index).weight_name())] =
                    gguf_type_for_codec(q.spec.to_string(), q.rows, q.cols);
            GgufExportReport r;
            m = measure([&] { r = export_gguf(*f.model, out, o); });
            bytes = r.file_bytes;
            state.counters["fallbacks"] = static_cast<double>(r.fallbacks.size());
            // "Q2_K 30, Q4_0 180" over the block weights, and each kind of fallback once.
            std::map<std::string, int> used, fell;
            for (const auto& t : r.tensors)
                if (t.name.rfind("blk.", 0) == 0 && t.ne.size() == 2) ++used[ggml_type_name(t.type)];
            for (const auto& fb : r.fallbacks)
                ++fell[std::string(ggml_type_name(fb.requested)) + "->" + ggml_type_name(fb.used) + " (" + fb.reason + ")"];
            std::ostringstream note;
            for (const auto& [t, n] : used) note << (note.tellp() ? ", " : "") << t << " x" << n;
            for (const auto& [what, n] : fell) note << "; " << n << " fallbacks " << what;
            row.note = note.str();
        }
        state.SetIterationTime(m.seconds);
        set_common(state, m, bytes);
        row.seconds = m.seconds;
        row.mib = static_cast<double>(bytes) / kMiB;
        row.peak_growth_mib = m.maxrss_after - m.maxrss_before;
        fs::remove_all(out);
    }
    state.SetLabel(f.spec + (format == "hf" ? ", f16" : ""));
    rows().push_back(row);
}

void print_table() {
    if (rows().empty()) return;
    std::fprintf(stderr, "\n%-7s %4s %8s %9s %10s %9s  %s\n", "format", "bits", "seconds", "MiB", "over_ideal", "peak+MiB",
                 "notes");
    for (const auto& r : rows()) {
        char over[32] = "-";
        if (r.packed) std::snprintf(over, sizeof(over), "%.3f%%", r.overhead_pct);
        std::fprintf(stderr, "%-7s %4d %8.2f %9.1f %10s %9.0f  %s\n", r.format.c_str(), r.bits, r.seconds, r.mib, over,
                     r.peak_growth_mib, r.note.c_str());
    }
    std::fprintf(stderr, "MiB: the weights file; over_ideal: packed file / ideal_bytes() - 1; peak+MiB: max RSS after "
                         "the export minus max RSS before it (reset: %s)\n",
                 reset_peak_rss() ? "yes" : "NO, sticky high-water mark");
}

}  // namespace

int main(int argc, char** argv) {
    for (int bits : {2, 3, 4})
        for (const char* format : {"packed", "hf", "gguf"})
            benchmark::RegisterBenchmark(("BM_Export/" + std::string(format) + "/b" + std::to_string(bits)).c_str(),
                                         [format = std::string(format), bits](benchmark::State& s) {
                                             BM_Export(s, format, bits);
                                         })
                ->Iterations(1)
                ->UseManualTime()
                ->Unit(benchmark::kMillisecond);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    print_table();
    benchmark::Shutdown();
    // The fixture (a function-local static) removes the temporary directory at exit.
    return 0;
}
