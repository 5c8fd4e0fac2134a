#include "quant/kernel_views.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "common/error.h"
#include "quant/bitpack.h"
#include "quant/codec_registry.h"
#include "quant/lcqat_lattice.h"
#include "quant/qamw.h"
#include "quant/scalar_grid.h"

namespace quench {
namespace {

std::string where(const CodecSpec& spec) { return "kernel view of '" + spec.to_string() + "'"; }

std::string shape_text(const QuantizedTensor& q) {
    return "[" + std::to_string(q.rows) + ", " + std::to_string(q.cols) + "]";
}

// q's parts as the kernel reads them: each present, on the CPU, contiguous, of one dtype and size.
class Parts {
public:
    explicit Parts(const QuantizedTensor& q) : q_(q), where_(where(q.spec)) {}

    [[noreturn]] void fail(const std::string& what) const { throw Error(where_ + ": " + what); }

    const at::Tensor& get(const std::string& name, at::ScalarType type, int64_t numel) const {
        const QuantPart* found = nullptr;
        for (const auto& p : q_.parts)
            if (p.name == name) found = &p;
        if (!found) fail("missing part '" + name + "'");
        const at::Tensor& t = found->data;
        const std::string part = "part '" + name + "'";
        if (!t.defined()) fail(part + " holds no tensor");
        if (!t.device().is_cpu()) fail(part + " is on " + t.device().str() + ", the kernels read CPU memory");
        if (t.scalar_type() != type)
            fail(part + " is " + c10::toString(t.scalar_type()) + ", the kernel reads " + c10::toString(type));
        if (t.numel() != numel)
            fail(part + " holds " + std::to_string(t.numel()) + " values, expected " + std::to_string(numel) +
                 " for a " + shape_text(q_) + " weight");
        if (!t.is_contiguous()) fail(part + " is not contiguous");
        return t;
    }
    const uint8_t* bytes(const std::string& name, int64_t n) const { return get(name, at::kByte, n).data_ptr<uint8_t>(); }
    const float* floats(const std::string& name, int64_t n) const { return get(name, at::kFloat, n).data_ptr<float>(); }
    const uint16_t* halves(const std::string& name, int64_t n) const {
        return reinterpret_cast<const uint16_t*>(get(name, at::kHalf, n).data_ptr<at::Half>());
    }

private:
    const QuantizedTensor& q_;
    std::string where_;
};

// quench::Error unless q's spec is read by `want`.
void expect_family(const QuantizedTensor& q, KernelFamily want) {
    const KernelFamily got = kernel_family(q.spec);
    if (got == KernelFamily::None) throw Error(where(q.spec) + ": no packed kernel reads this codec setting");
    if (got != want)
        throw Error(where(q.spec) + ": a " + kernel_family_name(want) + " view was asked for, but the " +
                    kernel_family_name(got) + " kernel reads this codec");
}

// A view of q's shape, after checking that `family` reads q's spec.
template <typename View>
View view_of(const QuantizedTensor& q, KernelFamily family) {
    expect_family(q, family);
    View v;
    v.rows = q.rows;
    v.cols = q.cols;
    return v;
}

// The kernel's own consistency check as a quench::Error naming the spec.
template <typename View>
View checked(const QuantizedTensor& q, const View& v) {
    try {
        kernels::validate(v);
    } catch (const std::invalid_argument& e) {
        throw Error(where(q.spec) + ": " + e.what());
    }
    return v;
}

}  // namespace

KernelFamily kernel_family(const CodecSpec& spec) {
    const CodecTraits* traits = find_codec(spec.codec());
    if (!traits) throw Error(where(spec) + ": unknown codec '" + spec.codec() + "' (known: " + codec_names() + ")");
    return traits->kernel ? traits->kernel(spec) : KernelFamily::None;
}

kernels::GridView grid_view(const QuantizedTensor& q) {
    namespace qk = kernels;
    auto v = view_of<qk::GridView>(q, KernelFamily::Grid);
    const CodecSpec& s = q.spec;
    const Parts parts(q);
    const bool paretoq = s.codec() == "paretoq" || (s.codec() == "gptq" && s.get_choice("grid") == "paretoq");
    const double b = s.get_real("b");
    v.group = group_size(s, s.codec() == "paretoq" ? 0 : s.get_int("g"), q.rows, q.cols);
    if (paretoq) {
        if (b == 1) v.kind = qk::GridKind::Binary, v.bits = 1;
        else if (std::abs(b - 1.58) < 1e-9) v.kind = qk::GridKind::Ternary, v.bits = 0;
        else if (b == 2) v.kind = qk::GridKind::Seq, v.bits = 2;
        else if (b == 3 || b == 4) v.kind = qk::GridKind::SymInt, v.bits = static_cast<int>(b);
        else parts.fail("b=" + s.values().at("b") + " is not a ParetoQ grid (1, 1.58, 2, 3, 4)");
    } else {
        if (b != std::floor(b) || b < 2 || b > 8) parts.fail("b=" + s.values().at("b") + " is not an integer grid width");
        v.bits = static_cast<int>(b);
        v.kind = s.get_flag("sym") ? qk::GridKind::SymInt : qk::GridKind::AsymInt;
    }
    const int64_t n = q.rows * q.cols, params = q.rows * group_count(q.cols, v.group);
    v.code_bytes = v.kind == qk::GridKind::Ternary ? (n + 4) / 5 : packed_bytes(n, v.bits);
    v.codes = parts.bytes("codes", v.code_bytes);
    v.scales = parts.halves("scales", params);
    if (v.kind == qk::GridKind::AsymInt) {
        v.zero_bytes = packed_bytes(params, v.bits);
        v.zeros = parts.bytes("zeros", v.zero_bytes);
    }
    return checked(q, v);
}

kernels::LiftView lift_view(const QuantizedTensor& q) {
    auto v = view_of<kernels::LiftView>(q, KernelFamily::Lift);
    const CodecSpec& s = q.spec;
    const Parts parts(q);
    v.D = static_cast<int>(s.get_int("D"));
    v.d = static_cast<int>(s.get_int("d"));
    if (q.rows < 1 || q.cols < 1 || v.d < 1) parts.fail("weight " + shape_text(q) + " with d=" + std::to_string(v.d));
    v.codes = parts.bytes("codes", v.code_bytes = packed_bytes(q.rows * kernels::lift_chunks(v) * v.D, 1));
    v.scales = parts.halves("scales", q.rows);
    v.M = parts.halves("M", int64_t(v.d) * v.D);
    if (s.get_flag("had")) v.signs = parts.bytes("signs", packed_bytes(q.cols, 1));
    if (s.get_flag("awq")) v.act_scale = parts.halves("act_scale", q.cols);
    return checked(q, v);
}

kernels::LatticeView lattice_view(const QuantizedTensor& q) {
    auto v = view_of<kernels::LatticeView>(q, KernelFamily::Lattice);
    const Parts parts(q);
    const LcqatBlocks blocks = lcqat_blocks(q.spec, q.rows, q.cols);  // quench::Error naming the spec and shape
    v.had_in = blocks.in;
    v.had_out = blocks.out;
    v.codes = parts.bytes("codes", q.rows * q.cols / 4);
    v.A = parts.floats("A", 16);
    v.b = parts.floats("b", 4);
    v.su = parts.halves("su", q.cols);
    v.sv = parts.halves("sv", q.rows);
    return checked(q, v);
}

kernels::QamwView qamw_view(const QuantizedTensor& q) {
    auto v = view_of<kernels::QamwView>(q, KernelFamily::Qamw);
    const CodecSpec& s = q.spec;
    const Parts parts(q);
    v.k = static_cast<int>(s.get_int("k"));
    if (q.rows < 1 || q.cols < 2 || q.cols % 2 != 0) parts.fail("weight " + shape_text(q) + ": cols must be even");
    v.block = qamw_block(s, q.cols);
    v.codes = parts.bytes("codes", v.code_bytes = packed_bytes(q.rows * (q.cols / 2), v.k));
    v.norms = parts.halves("norms", q.rows);
    v.codebook = parts.halves("codebook", (int64_t(1) << v.k) * 2);
    if (s.get_flag("act_scale")) v.act_scale = parts.halves("act_scale", q.cols);
    if (s.get_flag("signs")) {
        v.signs = true;
        v.sign_seed = static_cast<uint64_t>(*parts.get("sign_seed", at::kLong, 1).data_ptr<int64_t>());
    }
    return checked(q, v);
}

KernelView kernel_view(const QuantizedTensor& q) {
    switch (kernel_family(q.spec)) {
        case KernelFamily::Grid: return grid_view(q);
        case KernelFamily::Lift: return lift_view(q);
        case KernelFamily::Lattice: return lattice_view(q);
        case KernelFamily::Qamw: return qamw_view(q);
        case KernelFamily::None: break;
    }
    throw Error(where(q.spec) + ": no packed kernel reads this codec setting");
}

namespace {
void gemv_of(const kernels::GridView& w, const float* x, float* y, int64_t b, const kernels::CpuOptions& o) {
    kernels::grid_gemv(w, x, y, b, o);
}
void gemv_of(const kernels::LiftView& w, const float* x, float* y, int64_t b, const kernels::CpuOptions& o) {
    kernels::lift_gemv(w, x, y, b, o);
}
void gemv_of(const kernels::LatticeView& w, const float* x, float* y, int64_t b, const kernels::CpuOptions& o) {
    kernels::lattice_gemv(w, x, y, b, o);
}
void gemv_of(const kernels::QamwView& w, const float* x, float* y, int64_t b, const kernels::CpuOptions& o) {
    kernels::qamw_gemv(w, x, y, b, o);
}
}  // namespace

void kernel_gemv(const KernelView& v, const float* x, float* y, int64_t batch, const kernels::CpuOptions& options) {
    std::visit([&](const auto& w) { gemv_of(w, x, y, batch, options); }, v);
}

}  // namespace quench
