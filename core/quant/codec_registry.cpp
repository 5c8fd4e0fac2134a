#include "quant/codec_registry.h"

#include <algorithm>
#include <mutex>

#include "common/error.h"
#include "quant/codec.h"
#include "quant/codec_factories.h"

namespace quench {
namespace {

KernelFamily grid_kernel(const CodecSpec&) { return KernelFamily::Grid; }
KernelFamily lift_kernel(const CodecSpec&) { return KernelFamily::Lift; }
KernelFamily lattice_kernel(const CodecSpec&) { return KernelFamily::Lattice; }
// The polar baseline codes each pair's radius and angle separately: no kernel reads it.
KernelFamily qamw_kernel(const CodecSpec& spec) {
    return spec.get_choice("coding") == "joint" ? KernelFamily::Qamw : KernelFamily::None;
}

// The built-in codecs, one row each, in the order the CLI and the GUI list them.
const CodecTraits kBuiltin[] = {
    {"rtn", "scalar", "Round-to-nearest integer grid, per channel or per group, symmetric or asymmetric",
     &rtn_params, &make_rtn_codec, &rtn_examples, &grid_kernel},
    {"gptq", "scalar", "GPTQ: Hessian-aware error feedback over any scalar grid (integer or ParetoQ)",
     &gptq_params, &make_gptq_codec, &gptq_examples, &grid_kernel},
    {"paretoq", "scalar", "ParetoQ grids: binary, ternary, 2-bit SEQ, 3/4-bit LSQ with per-row scales",
     &paretoq_params, &make_paretoq_codec, &paretoq_examples, &grid_kernel, &make_paretoq_qat_layer},
    {"qamw", "vector", "QAM-W: row norm, block Hadamard, pairs coded on a 2-D Lloyd-Max codebook (or the polar baseline)",
     &qamw_params, &make_qamw_codec, &qamw_examples, &qamw_kernel},
    {"liftquant", "vector", "LiftQuant: w ~ M y with y in {+-1}^D, any fractional bit-width D/d",
     &liftquant_params, &make_liftquant_codec, &liftquant_examples, &lift_kernel, &make_liftquant_qat_layer, {}, {},
     nullptr, &liftquant_qat_bits},
    {"lcqat", "lattice", "LC-QAT lattice: 4-dim codes in {0..3}^4 through an affine map, Hessian-aware",
     &lcqat_params, &make_lcqat_codec, &lcqat_examples, &lattice_kernel, &make_lcqat_qat_layer, {}, {}, nullptr,
     &lcqat_qat_bits},
};

void check_row(const CodecTraits& row, const std::deque<CodecTraits>& table) {
    const std::string name = row.name ? row.name : "";
    const std::string where = "codec table: row '" + name + "'";
    if (name.empty()) throw Error("codec table: a row has no name");
    if (!std::all_of(name.begin(), name.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }))
        throw Error(where + ": a codec name is lower-case letters, digits and '_'");
    for (const auto& t : table)
        if (name == t.name) throw Error(where + ": the name is taken");
    if (!row.family || !row.description) throw Error(where + ": family and description are required");
    if (!row.params || !row.make || !row.examples) throw Error(where + ": params, make and examples are required");
}

struct Table {
    std::deque<CodecTraits> rows;
    std::mutex add;  // one registration at a time (reads take no lock: see register_codec)
    Table() {
        for (const auto& row : kBuiltin) {
            check_row(row, rows);
            rows.push_back(row);
        }
    }
};

Table& table() {
    static Table t;
    return t;
}

std::string join(const std::vector<std::string>& names, const char* last) {
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i)
        out += (i == 0 ? "" : i + 1 == names.size() ? last : ", ") + names[i];
    return out;
}

}  // namespace

const char* kernel_family_name(KernelFamily f) {
    switch (f) {
        case KernelFamily::None: return "none";
        case KernelFamily::Grid: return "grid";
        case KernelFamily::Lift: return "lift";
        case KernelFamily::Lattice: return "lattice";
        case KernelFamily::Qamw: return "qamw";
    }
    return "?";
}

const char* export_format_name(ExportFormat t) {
    switch (t) {
        case ExportFormat::Packed: return "packed";
        case ExportFormat::Hf: return "hf";
        case ExportFormat::Gguf: return "gguf";
    }
    return "?";
}

bool CodecExports::allows(ExportFormat t) const {
    switch (t) {
        case ExportFormat::Packed: return packed;
        case ExportFormat::Hf: return hf;
        case ExportFormat::Gguf: return gguf;
    }
    return false;
}

const std::deque<CodecTraits>& codec_table() { return table().rows; }

const CodecTraits* find_codec(const std::string& name) {
    for (const auto& t : codec_table())
        if (name == t.name) return &t;
    return nullptr;
}

const CodecTraits& register_codec(const CodecTraits& row) {
    Table& t = table();
    std::lock_guard<std::mutex> lock(t.add);
    check_row(row, t.rows);
    t.rows.push_back(row);
    return t.rows.back();
}

std::string codec_names() {
    std::vector<std::string> names;
    for (const auto& t : codec_table()) names.push_back(t.name);
    return join(names, ", ");
}

std::string qat_codec_names() {
    std::vector<std::string> names;
    for (const auto& t : codec_table())
        if (t.qat) names.push_back(t.name);
    return join(names, " or ");
}

bool qat_supports(const std::string& codec) {
    const CodecTraits* t = find_codec(codec);
    return t && t->qat;
}

QatDefaults qat_defaults(const std::string& codec) {
    const CodecTraits* t = find_codec(codec);
    return t && t->qat ? t->qat_defaults : QatDefaults{};
}

void check_exportable(const CodecSpec& spec, ExportFormat target, const std::string& where) {
    const CodecTraits* t = find_codec(spec.codec());
    if (!t) throw Error(where + ": unknown codec '" + spec.codec() + "' (known: " + codec_names() + ")");
    if (t->exports.allows(target)) return;
    std::vector<std::string> allowed;
    for (ExportFormat e : {ExportFormat::Packed, ExportFormat::Hf, ExportFormat::Gguf})
        if (t->exports.allows(e)) allowed.push_back(export_format_name(e));
    throw Error(where + ": " + spec.to_string() + " cannot be exported as " + export_format_name(target) +
                (allowed.empty() ? std::string(" (its codec declares no export)")
                                 : " (its codec exports as " + join(allowed, " or ") + ")"));
}

void check_exportable(const std::map<std::size_t, QuantizedTensor>& tensors, ExportFormat target,
                      const std::string& where) {
    for (const auto& [index, q] : tensors) check_exportable(q.spec, target, where);
}

std::unique_ptr<Codec> make_codec(const CodecSpec& spec) {
    const CodecTraits* t = find_codec(spec.codec());
    if (!t) throw Error("unknown codec '" + spec.codec() + "'");
    return t->make(spec);
}

}  // namespace quench
