#pragma once
// The codec table: one row per codec, the only place the program learns what a codec is and what it offers.
// The spec parser, the CLI's codec lists and help texts, the GUI's method form and tooltips, the kernel views,
// the QAT engine, the exporters and the table-driven tests (tests/core/quant/test_codec_table.cpp) all read
// the rows; nothing else lists codecs by name.
//
// Adding a codec: its file (params, factory, examples; a QAT form and a GGUF type where it has them) and one
// row, either in codec_registry.cpp's built-in list (with its declarations in codec_factories.h) or, for a
// codec defined outside core (a test's toy codec, a plug-in), through register_codec.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quant/codec_spec.h"
#include "quant/ggml_blocks.h"
#include "quant/trainable_layer.h"

namespace quench {

class Codec;
struct BitsEstimate;

// Which packed kernel (kernels/include/quench_kernels) reads a codec's stored parts; quant/kernel_views.h
// turns a QuantizedTensor into the matching view.
enum class KernelFamily {
    None = 0,  // no packed kernel reads this setting: packed checkpoints dequantize it at load
    Grid,      // kernels::GridView: scalar grids (rtn, gptq, paretoq)
    Lift,      // kernels::LiftView: liftquant
    Lattice,   // kernels::LatticeView: lcqat
    Qamw,      // kernels::QamwView: qamw coding=joint
};
const char* kernel_family_name(KernelFamily f);  // "none", "grid", "lift", "lattice", "qamw"

// The files a model with quantized layers can be written to (io/export_plan.h plans them).
enum class ExportFormat { Packed = 1, Hf, Gguf };
const char* export_format_name(ExportFormat f);  // "packed", "hf", "gguf"

struct CodecExports {
    bool packed = true;  // io/packed_checkpoint.h: the parts as stored (loadable when make() rebuilds the codec)
    bool hf = true;      // io/hf_export.h: the dequantized weight in FP16/BF16
    bool gguf = true;    // io/gguf_export.h: the dequantized weight re-encoded in a ggml type
    bool allows(ExportFormat t) const;
};

struct CodecTraits {
    const char* name;         // spec prefix: "rtn"
    const char* family;       // "scalar", "vector", "lattice"
    const char* description;  // one line for help texts and tooltips
    const std::vector<ParamDef>& (*params)();
    std::unique_ptr<Codec> (*make)(const CodecSpec&);
    // Settings the tests and the sensitivity sweep use: a few representative specs, from low to high bits.
    const std::vector<std::string>& (*examples)();
    // The packed kernel that reads a setting's parts; nullptr: none reads any setting of this codec.
    KernelFamily (*kernel)(const CodecSpec&) = nullptr;
    // The trainable form QAT fine-tunes (step 0 computes the PTQ layer); nullptr: no QAT form.
    QatLayerFactory qat = nullptr;
    // The learning rates QAT of this codec starts from (CLI and GUI defaults).
    QatDefaults qat_defaults = {};
    // Where its tensors can be exported.
    CodecExports exports = {};
    // The ggml type a GGUF export re-encodes a [rows, cols] weight of this setting in when none is asked
    // for; nullptr: the type nearest the setting's own bits per weight (io/gguf_export.h, gguf_type_for_bits).
    GgmlType (*gguf_type)(const CodecSpec&, int64_t rows, int64_t cols) = nullptr;
    // The bits a [rows, cols] layer of this setting costs once QAT has trained it (what its QAT form's
    // export_tensor stores: LiftQuant adds trained input scales, LC-QAT's affine map becomes per layer), so
    // a user sees the cost of training before starting it; nullptr: the PTQ setting's own estimate.
    BitsEstimate (*qat_bits)(const Codec& ptq, int64_t rows, int64_t cols) = nullptr;
};

// Every row: the built-in codecs in their fixed order, then the registered ones in registration order.
// Rows never move or go away, so pointers from find_codec stay valid for the program's life.
const std::deque<CodecTraits>& codec_table();
const CodecTraits* find_codec(const std::string& name);  // nullptr when unknown

// Appends a row and returns it. quench::Error when the name is empty, not [a-z0-9_], or taken, or when
// params, make or examples is missing. Register before anything reads the table from another thread (at
// start-up or in a test's static initialisation): reads take no lock.
const CodecTraits& register_codec(const CodecTraits& row);

// Lists for help texts and messages, in table order.
std::string codec_names();      // "rtn, gptq, paretoq, qamw, liftquant, lcqat"
std::string qat_codec_names();  // the codecs with a QAT form: "paretoq, liftquant or lcqat"

// Whether codec (a name, "paretoq") has a QAT form.
bool qat_supports(const std::string& codec);
// The learning rates QAT of codec starts from: its row's, or QatDefaults{} for a codec without a QAT form.
QatDefaults qat_defaults(const std::string& codec);

// quench::Error "<where>: <spec> cannot be exported as <target> (...)" unless spec's codec allows target.
void check_exportable(const CodecSpec& spec, ExportFormat target, const std::string& where);
// The same for every tensor of a quantized model (registry index -> tensor).
void check_exportable(const std::map<std::size_t, QuantizedTensor>& tensors, ExportFormat target,
                      const std::string& where);

}  // namespace quench
