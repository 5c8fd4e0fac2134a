// The codec table (quant/codec_registry.h) is the only source of codec facts, so its rows' promises are
// checked here, row by row, for every row the table holds (built in or registered): every example setting
// parses canonically and quantizes; its kernel family's view dequantizes to what the codec does (within
// kernels/dequant_tolerance.h) and a row without one has no view; its tensors come back part for part from
// the packed checkpoint and as their FP16 weights from the HF export; its QAT form computes the PTQ layer at
// step 0 and exports the same codes; its GGUF type is writable for a width that fits; its formats are
// allowed and the others refused. The lists the CLI and the GUI show are generated from the rows.
//
// Then a toy codec, "sign" (one sign bit per weight times a per-row fp16 scale), is defined in this file
// alone and added with one register_codec row, with a QAT form and a GGUF type of its own: with nothing
// else touched, it parses, shows in every generated list, quantizes the real model through the model
// quantizer, round-trips through the packed checkpoint, trains in the QAT trainer and exports to GGUF.
// Registered at static initialisation, it is also one more row for every table-driven suite in this binary
// (test_codecs.cpp, test_packed_checkpoint.cpp), as any new codec would be.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "common/error.h"
#include "io/gguf_export.h"
#include "io/hf_export.h"
#include "io/model_loading.h"
#include "io/packed_checkpoint.h"
#include "io/packed_loader.h"
#include "jobs/model_quantizer.h"
#include "kernels/dequant_tolerance.h"
#include "kernels/packed_test_support.h"
#include "model/llama_model.h"
#include "qat/qat_layer.h"
#include "qat/qat_trainer.h"
#include "quant/bitpack.h"
#include "quant/codec.h"
#include "quant/codec_registry.h"
#include "quant/ggml_blocks.h"
#include "quant/kernel_views.h"
#include "support/errors.h"
#include "support/test_paths.h"
#include "support/tiny_model.h"

using namespace quench;
using test::error_of;

// ---- the toy codec: this block and the register_codec row below are all it takes ----------------------------
namespace {

// w ~ s_r * sign(w) (0 -> +1): codes "codes" (1 bit per weight), "scales" (one fp16 per row). scale=mean
// uses s_r = mean |w_r|, the least-squares scale of a sign code; scale=rms the row's rms (a worse fit at the
// same bits, so the two examples differ).
const std::vector<ParamDef>& sign_params() {
    static const std::vector<ParamDef> params = {
        {"scale", ParamType::Choice, "mean", 0, 0, {"mean", "rms"},
         "row scale: mean |w| (least squares for sign codes) or the row's rms"}};
    return params;
}

class SignCodec : public Codec {
public:
    using Codec::Codec;
    BitsEstimate estimate_bits(int64_t rows, int64_t cols) const override {
        const double n = double(rows) * double(cols);
        return {1.0, (n + 16.0 * double(rows)) / n, 0};
    }
    QuantizedTensor quantize(const at::Tensor& W, const QuantizeContext&) const override {
        const at::Tensor w = W.to(torch::kFloat32).contiguous();
        const at::Tensor s = spec().get_choice("scale") == "rms" ? w.square().mean(1).sqrt() : w.abs().mean(1);
        QuantizedTensor q;
        q.spec = spec();
        q.rows = w.size(0);
        q.cols = w.size(1);
        q.parts.push_back({"codes", PartRole::Codes, pack_bits((w >= 0).to(torch::kUInt8), 1), q.numel(), false});
        q.parts.push_back({"scales", PartRole::Scale, s.to(torch::kHalf).contiguous(), 16 * q.rows, false});
        return q;
    }
    at::Tensor dequantize(const QuantizedTensor& q) const override {
        const at::Tensor sign = unpack_bits(q.part("codes").data, 1, q.numel()).reshape({q.rows, q.cols}) * 2 - 1;
        return sign.to(torch::kFloat32) * q.part("scales").data.to(torch::kFloat32).unsqueeze(1);
    }
};

std::unique_ptr<Codec> make_sign_codec(const CodecSpec& spec) { return std::make_unique<SignCodec>(spec); }

const std::vector<std::string>& sign_examples() {
    static const std::vector<std::string> examples = {"sign", "sign:scale=rms"};
    return examples;
}

// The QAT form: latent signs with a straight-through estimator (forward sign, 0 -> +1; backward identity)
// and a trainable row scale; starts from the stored signs and scales, so step 0 is the PTQ layer.
class SignQatLayer : public QatLayer {
public:
    explicit SignQatLayer(const QuantizedTensor& ptq) : spec_(ptq.spec) {
        latent_ = (unpack_bits(ptq.part("codes").data, 1, ptq.numel()).reshape({ptq.rows, ptq.cols}) * 2 - 1)
                      .to(torch::kFloat32)
                      .set_requires_grad(true);
        alpha_ = ptq.part("scales").data.to(torch::kFloat32).unsqueeze(1).clone().set_requires_grad(true);
    }
    at::Tensor forward(const at::Tensor& x) const override {
        const at::Tensor hard = torch::where(latent_ >= 0, torch::ones_like(latent_), -torch::ones_like(latent_));
        const at::Tensor w = alpha_ * (latent_ + (hard - latent_).detach());
        return x.matmul(w.to(x.scalar_type()).t());
    }
    std::vector<QatParam> params() const override {
        return {{"latent", QatParamKind::Latent, latent_}, {"alpha", QatParamKind::Scale, alpha_}};
    }
    QuantizedTensor export_tensor() const override {
        torch::NoGradGuard no_grad;
        QuantizedTensor q;
        q.spec = spec_;
        q.rows = latent_.size(0);
        q.cols = latent_.size(1);
        q.parts.push_back({"codes", PartRole::Codes, pack_bits((latent_ >= 0).to(torch::kUInt8), 1), q.numel(), false});
        q.parts.push_back({"scales", PartRole::Scale, alpha_.squeeze(1).to(torch::kHalf).contiguous(), 16 * q.rows, false});
        return q;
    }

private:
    CodecSpec spec_;
    at::Tensor latent_, alpha_;
};

std::unique_ptr<QatLayer> make_sign_qat_layer(const QuantizedTensor& ptq, const at::Tensor&, const QatLayerOptions&) {
    return std::make_unique<SignQatLayer>(ptq);
}

// Each 32-block of a sign-coded row holds two values, -s and +s: Q4_1's min and min + 15 d store them up to
// the rounding of d to fp16, far closer than the Q2_K its 1.06 bits per weight would pick.
GgmlType sign_gguf_type(const CodecSpec&, int64_t, int64_t) { return GgmlType::Q4_1; }

// The row.
const CodecTraits& kSignRow = register_codec(
    {"sign", "scalar", "Toy codec of the table test: one sign bit per weight times a per-row fp16 scale",
     &sign_params, &make_sign_codec, &sign_examples, /*kernel*/ nullptr, &make_sign_qat_layer, QatDefaults{2e-4, 2e-3},
     CodecExports{}, &sign_gguf_type});

}  // namespace
// ---- end of the toy codec -------------------------------------------------------------------------------

namespace {

// A second row of the same codec that may only be written as a packed checkpoint: the refusals' subject.
const std::vector<std::string>& sign_packed_examples() {
    static const std::vector<std::string> examples = {"sign_packed"};
    return examples;
}
const CodecTraits& kSignPackedRow = register_codec(
    {"sign_packed", "scalar", "Toy codec of the table test that exports only as a packed checkpoint", &sign_params,
     &make_sign_codec, &sign_packed_examples, nullptr, nullptr, {}, CodecExports{true, false, false}});

constexpr int64_t kTableRows = 24, kTableCols = 256;  // 256: a multiple of every block size, so every GGUF type fits

struct Example {
    const CodecTraits* row;
    std::string spec;
};

void PrintTo(const Example& e, std::ostream* os) { *os << e.spec; }

std::vector<Example> every_example() {
    std::vector<Example> out;
    for (const auto& row : codec_table())
        for (const auto& e : row.examples()) out.push_back({&row, e});
    return out;
}

std::string param_name(const ::testing::TestParamInfo<Example>& info) {
    std::string n = info.param.spec;
    for (char& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
}

class EveryRowExample : public ::testing::TestWithParam<Example> {};

// The example quantized by core, with calibration where the codec needs it.
test::PackedCase quantized(const std::string& spec, uint64_t seed = 3) {
    return test::make_case(spec, test::trained_like(kTableRows, kTableCols, seed), seed, seed);
}

std::vector<ExportFormat> all_formats() { return {ExportFormat::Packed, ExportFormat::Hf, ExportFormat::Gguf}; }

}  // namespace

TEST(CodecTable, RegisteredRowsJoinTheTableAfterTheBuiltInOnes) {
    EXPECT_EQ(find_codec("sign"), &kSignRow);
    EXPECT_EQ(find_codec("sign_packed"), &kSignPackedRow);
    EXPECT_STREQ(codec_table().front().name, "rtn");
    // Rows keep their addresses.
    for (const auto& row : codec_table()) EXPECT_EQ(find_codec(row.name), &row);
}

TEST(CodecTable, RegisterRefusesTakenAndMalformedRows) {
    const std::size_t before = codec_table().size();
    CodecTraits row = kSignRow;
    EXPECT_NE(error_of([&] { register_codec(row); }).find("'sign': the name is taken"), std::string::npos);
    row.name = "Sign!";
    EXPECT_NE(error_of([&] { register_codec(row); }).find("lower-case"), std::string::npos);
    row.name = "";
    EXPECT_NE(error_of([&] { register_codec(row); }).find("no name"), std::string::npos);
    row.name = "sign_without_factory";
    row.make = nullptr;
    EXPECT_NE(error_of([&] { register_codec(row); }).find("params, make and examples are required"), std::string::npos);
    EXPECT_EQ(codec_table().size(), before);
}

// What the CLI's help and errors and the GUI's lists and tooltips show comes from the rows.
TEST(CodecTable, GeneratesTheListsTheFrontEndsShow) {
    std::string names, qat;
    std::vector<std::string> qat_rows;
    for (const auto& row : codec_table()) {
        names += (names.empty() ? "" : ", ") + std::string(row.name);
        if (row.qat) qat_rows.push_back(row.name);
    }
    EXPECT_EQ(codec_names(), names);
    for (std::size_t i = 0; i < qat_rows.size(); ++i)
        qat += (i == 0 ? "" : i + 1 == qat_rows.size() ? " or " : ", ") + qat_rows[i];
    EXPECT_EQ(qat_codec_names(), qat);
    EXPECT_NE(qat.find("paretoq"), std::string::npos);
    EXPECT_NE(qat.find("sign"), std::string::npos) << "the toy codec has a QAT form";
    EXPECT_EQ(qat.find("sign_packed"), std::string::npos);
    EXPECT_EQ(qat.find("rtn"), std::string::npos);

    // The parser's and the kernel views' unknown-codec errors, and make_qat_layer's refusal, name the rows.
    EXPECT_NE(error_of([] { CodecSpec::parse("zip:b=4"); }).find("(known: " + codec_names() + ")"), std::string::npos);
    EXPECT_NE(error_of([] { kernel_family(QuantizedTensor().spec); }).find(codec_names()), std::string::npos);
    const auto rtn = quantized("rtn:b=4,g=64");
    EXPECT_NE(error_of([&] { make_qat_layer(rtn.q, rtn.ref); }).find("no QAT form (" + qat + ")"), std::string::npos);

    // GGUF: one list of types for the GUI's combo box, the CLI's --type and its error text.
    const auto& types = gguf_export_types();
    EXPECT_EQ(types.size(), ggml_types().size());
    for (std::size_t i = 1; i < types.size(); ++i)
        EXPECT_LE(ggml_type_info(types[i - 1]).bits_per_weight(), ggml_type_info(types[i]).bits_per_weight());
    EXPECT_EQ(gguf_export_type_names().substr(0, 12), "q2_k, q3_k, ");
    for (GgmlType t : types) EXPECT_EQ(parse_gguf_type(ggml_type_name(t), "--type"), t);
    EXPECT_EQ(parse_gguf_type("q4_k", "--type"), GgmlType::Q4_K);
    const std::string bad = error_of([] { parse_gguf_type("q9_k", "--type"); });
    EXPECT_EQ(bad, "--type: unknown GGUF type 'q9_k' (" + gguf_export_type_names() + ")");

    // QAT learning rates: QatOptions' defaults are core's, a row's are its own.
    EXPECT_EQ(QatOptions().lr, QatDefaults{}.lr);
    EXPECT_EQ(QatOptions().scale_lr, QatDefaults{}.scale_lr);
    EXPECT_EQ(qat_defaults("sign").lr, 2e-4);
    EXPECT_EQ(qat_defaults("sign").scale_lr, 2e-3);
    EXPECT_EQ(qat_defaults("rtn").lr, QatDefaults{}.lr);  // no QAT form: core's
}

// Row-wide promises: examples from low to high bits, QAT learning rates that train, no QAT form where the row
// declares none.
TEST(CodecTable, EveryRowsExamplesAndQatDeclaration) {
    for (const auto& row : codec_table()) {
        SCOPED_TRACE(row.name);
        ASSERT_FALSE(row.examples().empty());
        double last = 0;
        for (const auto& e : row.examples()) {
            const double bits = make_codec(e)->estimate_bits(kTableRows, kTableCols).code_bits_per_weight;
            EXPECT_GE(bits, last) << e << ": examples go from low to high bits";
            last = bits;
        }
        EXPECT_EQ(qat_supports(row.name), row.qat != nullptr);
        if (row.qat) {
            EXPECT_GT(row.qat_defaults.lr, 0);
            EXPECT_GT(row.qat_defaults.scale_lr, 0);
            EXPECT_TRUE(std::isfinite(row.qat_defaults.lr) && std::isfinite(row.qat_defaults.scale_lr));
        }
    }
}

// TEST_P in the anonymous namespace with its fixture: a test class outside it deriving from the fixture is
// a -Wsubobject-linkage warning when this file is compiled inside a unity batch.
namespace {

TEST_P(EveryRowExample, KeepsItsRowsPromises) {
    const CodecTraits& row = *GetParam().row;
    const CodecSpec spec = CodecSpec::parse(GetParam().spec);
    ASSERT_EQ(find_codec(spec.codec()), &row);
    EXPECT_EQ(CodecSpec::parse(spec.to_string()), spec);
    const test::PackedCase c = quantized(GetParam().spec);
    const QuantizedTensor& q = c.q;
    ASSERT_EQ(q.spec, spec);
    ASSERT_EQ(c.ref.sizes(), (std::vector<int64_t>{kTableRows, kTableCols}));
    ASSERT_TRUE(torch::isfinite(c.ref).all().item<bool>());

    // Kernel family: the view dequantizes to the codec's weight; no view where the row names no kernel.
    const KernelFamily family = row.kernel ? row.kernel(spec) : KernelFamily::None;
    EXPECT_EQ(kernel_family(spec), family);
    if (family == KernelFamily::None) {
        EXPECT_NE(error_of([&] { kernel_view(q); }).find("no packed kernel reads this codec setting"), std::string::npos);
    } else {
        const KernelView v = kernel_view(q);
        std::vector<float> k(q.numel());
        test::dequantize_f32(v, k.data(), {});
        const auto got = torch::from_blob(k.data(), {q.rows, q.cols}).to(torch::kDouble);
        const at::Tensor tol = test::dequant_tolerance(v);
        if (tol.defined()) EXPECT_TRUE(((got - c.ref.to(torch::kDouble)).abs() <= tol).all().item<bool>());
        else EXPECT_TRUE(torch::equal(got.to(torch::kFloat), c.ref));
    }

    // QAT form: step 0 is the PTQ layer, and it exports the PTQ codes; the trainer reaches it by the row.
    if (row.qat) {
        const at::Tensor W = test::trained_like(kTableRows, kTableCols, 3);
        const auto layer = make_qat_layer(q, W);
        ASSERT_FALSE(layer->params().empty());
        for (const auto& p : layer->params()) EXPECT_TRUE(p.tensor.requires_grad()) << p.name;
        auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
        const at::Tensor x = torch::randn({5, kTableCols}, gen);
        torch::NoGradGuard no_grad;
        const at::Tensor want = x.matmul(c.ref.t());
        // fp32 sums of kTableCols terms in another order (and LC-QAT's Hadamard transforms): relative to sum |x w|.
        const at::Tensor scale = x.abs().matmul(c.ref.abs().t());
        EXPECT_LT(((layer->forward(x) - want).abs() / scale).max().item<double>(), 1e-5);
        // The same codec (LiftQuant's trainable column scales export as its awq input scaling).
        const QuantizedTensor back = layer->export_tensor();
        EXPECT_EQ(back.spec.codec(), q.spec.codec()) << back.spec.to_string();
        EXPECT_TRUE(torch::equal(back.part("codes").data, q.part("codes").data));
        EXPECT_TRUE(torch::allclose(make_codec(back.spec)->dequantize(back), c.ref, 1e-5, 1e-6));
        // The bits a trained layer costs are known before training: the row's qat_bits (or the PTQ
        // estimate) equal what the trained layer stores, part for part, and what it shares.
        const auto codec = make_codec(spec);
        const BitsEstimate e = row.qat_bits ? row.qat_bits(*codec, kTableRows, kTableCols)
                                            : codec->estimate_bits(kTableRows, kTableCols);
        int64_t shared = 0;
        for (const auto& p : back.parts) shared += p.shared ? p.bits : 0;
        EXPECT_DOUBLE_EQ(e.total_bits_per_weight, back.total_bits_per_weight()) << back.spec.to_string();
        EXPECT_EQ(e.shared_bits, shared) << back.spec.to_string();
    } else {
        EXPECT_NE(error_of([&] { make_qat_layer(q, c.ref); }).find("has no QAT form"), std::string::npos);
    }

    // Exports: the formats the row allows pass the check, the others are refused naming the spec.
    for (ExportFormat f : all_formats()) {
        const std::string refusal = error_of([&] { check_exportable(spec, f, "export"); });
        if (row.exports.allows(f)) EXPECT_EQ(refusal, "") << export_format_name(f);
        else EXPECT_NE(refusal.find(spec.to_string() + " cannot be exported as " + export_format_name(f)), std::string::npos) << refusal;
    }
    // GGUF: the type the export picks fits a width that every type fits, and holds the weight.
    if (row.exports.gguf) {
        const GgmlType t = gguf_type_for_codec(spec.to_string(), kTableRows, kTableCols);
        EXPECT_EQ(gguf_fitting_type(t, kTableCols), t) << ggml_type_name(t);
        const std::size_t bytes = ggml_row_bytes(t, kTableCols);
        std::vector<uint8_t> block(bytes);
        std::vector<float> back(kTableCols);
        const at::Tensor w = c.ref.contiguous();
        double err = 0, norm = 0;
        for (int64_t r = 0; r < kTableRows; ++r) {
            ggml_quantize_row(t, w.data_ptr<float>() + r * kTableCols, kTableCols, block.data());
            ggml_dequantize_row(t, block.data(), kTableCols, back.data());
            for (int64_t j = 0; j < kTableCols; ++j) {
                const double v = w.data_ptr<float>()[r * kTableCols + j];
                ASSERT_TRUE(std::isfinite(back[j]));
                err += (back[j] - v) * (back[j] - v);
                norm += v * v;
            }
        }
        EXPECT_LT(std::sqrt(err / norm), 0.5) << ggml_type_name(t);
    } else {
        EXPECT_NE(error_of([&] {
                      gguf_type_for_codec(spec.to_string(), kTableRows, kTableCols);
                  }).find("cannot be exported as gguf"),
                  std::string::npos);
    }
}

}  // namespace

namespace {

// A small Llama (widths 128 and 256, every block and chunk size the examples use) written once per process.
const std::string& tiny_model_dir() {
    static test::ScratchDir dir;
    static const std::string path = test::write_tiny_llama(dir.path().string(), "tiny", 128, 256);
    return path;
}

std::vector<int32_t> random_tokens(std::size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> id(3, 2047);
    std::vector<int32_t> out(n);
    for (auto& t : out) t = id(rng);
    return out;
}

QuantizeOptions tiny_options() {
    QuantizeOptions o;
    o.capture.ctx = 64;
    o.capture.sample_rows = 32;
    return o;
}

void expect_parts_equal(const QuantizedTensor& back, const QuantizedTensor& q) {
    EXPECT_EQ(back.spec, q.spec);
    EXPECT_EQ(back.rows, q.rows);
    EXPECT_EQ(back.cols, q.cols);
    ASSERT_EQ(back.parts.size(), q.parts.size());
    for (std::size_t k = 0; k < q.parts.size(); ++k) {
        const QuantPart &a = back.parts[k], &b = q.parts[k];
        EXPECT_EQ(a.name, b.name);
        EXPECT_EQ(a.role, b.role) << b.name;
        EXPECT_EQ(a.bits, b.bits) << b.name;
        EXPECT_EQ(a.shared, b.shared) << b.name;
        EXPECT_TRUE(torch::equal(a.data, b.data)) << b.name;
    }
}

// The example on two layers of a small model through the model quantizer, then every file format the row
// allows: the packed checkpoint gives back the parts and the weights bit for bit, the HF export the weights
// rounded to FP16; a format the row does not allow is refused before anything is written.
TEST_P(EveryRowExample, RoundTripsThroughTheFormatsItsRowAllows) {
    const CodecTraits& row = *GetParam().row;
    auto m = load_model(tiny_model_dir());
    const std::vector<std::size_t> layers = {*m->layers().index_of("model.layers.0.self_attn.q_proj"),
                                             *m->layers().index_of("model.layers.1.mlp.down_proj")};
    const QuantizeResult r = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse(GetParam().spec)),
                                                   random_tokens(512, 5), tiny_options());
    ASSERT_EQ(r.tensors.size(), layers.size());
    test::ScratchDir dir;

    const std::string packed = dir.file("packed");
    if (row.exports.packed) {
        write_packed_checkpoint(*m, r.tensors, packed);
        const auto back = read_packed_tensors(packed);
        auto loaded = load_model(packed);
        for (const auto& [l, q] : r.tensors) {
            const std::string name = m->layers().at(l).weight_name();
            ASSERT_TRUE(back.count(name)) << name;
            expect_parts_equal(back.at(name), q);
            EXPECT_TRUE(torch::equal(loaded->weight(l), m->weight(l))) << name;
        }
    } else {
        EXPECT_NE(error_of([&] { write_packed_checkpoint(*m, r.tensors, packed); }).find("cannot be exported as packed"),
                  std::string::npos);
        EXPECT_FALSE(std::filesystem::exists(packed));
    }

    if (row.exports.hf) {
        const std::string hf = dir.file("hf");
        export_hf_dequantized(*m, hf, DType::F16);
        auto loaded = load_model(hf);
        for (const auto& [l, q] : r.tensors)
            EXPECT_TRUE(torch::equal(loaded->weight(l), m->weight(l).to(torch::kHalf).to(torch::kFloat32)))
                << m->layers().at(l).name;
    } else {
        EXPECT_NE(error_of([&] { check_exportable(r.tensors, ExportFormat::Hf, "export"); }).find("cannot be exported as hf"),
                  std::string::npos);
    }
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(CodecTable, EveryRowExample, ::testing::ValuesIn(every_example()), param_name);

// ---- the toy codec through the program ----------------------------------------------------------------------

TEST(CodecTableToyCodec, ParsesAndDescribesItselfThroughItsRow) {
    const CodecSpec s = CodecSpec::parse("sign");
    EXPECT_EQ(s.to_string(), "sign:scale=mean");
    EXPECT_EQ(CodecSpec::parse("sign:scale=rms").get_choice("scale"), "rms");
    EXPECT_NE(error_of([] { CodecSpec::parse("sign:scale=max"); }).find("scale"), std::string::npos);
    EXPECT_NE(error_of([] { CodecSpec::parse("sign:b=2"); }).find("sign has no parameter 'b' (it has: scale)"),
              std::string::npos);
    EXPECT_NE(codec_names().find("sign"), std::string::npos);
    EXPECT_EQ(kernel_family(s), KernelFamily::None);
    EXPECT_TRUE(qat_supports("sign"));
    EXPECT_FALSE(qat_supports("sign_packed"));
    // The GGUF type its row names, not the one its bits would pick.
    EXPECT_EQ(gguf_type_for_codec("sign", 64, 128), GgmlType::Q4_1);
    EXPECT_EQ(gguf_type_for_bits(make_codec("sign")->estimate_bits(64, 128).total_bits_per_weight), GgmlType::Q2_K);
}

TEST(CodecTableToyCodec, Q41HoldsItsTwoLevelsPerBlock) {
    const test::PackedCase c = quantized("sign");
    const at::Tensor w = c.ref.contiguous();
    std::vector<uint8_t> block(ggml_row_bytes(GgmlType::Q4_1, kTableCols));
    std::vector<float> back(kTableCols);
    for (int64_t r = 0; r < kTableRows; ++r) {
        const float* row = w.data_ptr<float>() + r * kTableCols;
        ggml_quantize_row(GgmlType::Q4_1, row, kTableCols, block.data());
        ggml_dequantize_row(GgmlType::Q4_1, block.data(), kTableCols, back.data());
        // -s and +s come back up to the fp16 rounding of Q4_1's step d = 2s/15 (15 steps of it: 15 * 2^-11 d).
        for (int64_t j = 0; j < kTableCols; ++j) EXPECT_NEAR(back[j], row[j], 2e-3 * std::abs(row[j])) << r << "," << j;
    }
}

TEST(CodecTableToyCodec, QuantizesTheRealModelAndRoundTripsThroughThePackedCheckpoint) {
    auto m = load_model(test::real_model_dir());
    const auto layers = m->layers().select_glob("model.layers.0.*");
    ASSERT_GE(layers.size(), 7u);
    const QuantizeResult r = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse("sign")), {}, {});
    ASSERT_EQ(r.tensors.size(), layers.size());
    int64_t weights = 0, rows = 0;
    for (const auto& l : r.layers) {
        const QuantizedTensor& q = r.tensors.at(l.layer);
        EXPECT_EQ(l.spec.to_string(), "sign:scale=mean");
        EXPECT_EQ(q.code_bits_per_weight(), 1.0);
        EXPECT_TRUE(torch::equal(m->weight(l.layer), make_codec(q.spec)->dequantize(q))) << l.name;
        // Each weight is its row's mean |w| with the original's sign.
        const at::Tensor w = m->original_weight(l.layer);
        const at::Tensor s = w.abs().mean(1, true).to(torch::kHalf).to(torch::kFloat32);
        EXPECT_TRUE(torch::equal(m->weight(l.layer), torch::where(w >= 0, s, -s))) << l.name;
        weights += q.numel();
        rows += q.rows;
    }
    EXPECT_DOUBLE_EQ(r.total_bits_per_weight(), double(weights + 16 * rows) / double(weights));

    test::ScratchDir dir;
    const std::string out = dir.file("packed");
    const PackedWriteReport rep = write_packed_checkpoint(*m, r.tensors, out);
    EXPECT_EQ(rep.quantized_tensors, int(layers.size()));
    EXPECT_DOUBLE_EQ(rep.total_bits_per_weight(), r.total_bits_per_weight());
    const auto back = read_packed_tensors(out);
    auto loaded = load_model(out);
    EXPECT_EQ(loaded->decoded_weights().size(), layers.size());
    for (const auto& [l, q] : r.tensors) {
        expect_parts_equal(back.at(m->layers().at(l).weight_name()), q);
        EXPECT_TRUE(torch::equal(loaded->weight(l), m->weight(l)));
    }
}

TEST(CodecTableToyCodec, TrainsInTheQatTrainerAndExportsItsOwnCodec) {
    auto m = load_model(tiny_model_dir());
    const auto layers = m->layers().select_glob("model.layers.0.*");
    const QuantizeResult ptq = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse("sign")), {}, {});
    QatOptions o;
    o.mode = QatMode::Block;
    o.ctx = 32;
    o.batch = 2;
    o.tokens = 4 * 2 * 32;  // four steps
    o.lr = qat_defaults("sign").lr;
    o.scale_lr = qat_defaults("sign").scale_lr;
    const QatResult r = train_qat(*m, ptq.tensors, random_tokens(4096, 7), {}, o);
    EXPECT_GT(r.total_steps, 0);
    ASSERT_EQ(r.tensors.size(), layers.size());
    for (const auto& [l, q] : r.tensors) {
        EXPECT_EQ(q.spec.codec(), "sign");
        EXPECT_TRUE(std::isfinite(r.final_loss()));
        // The model holds the trained layers' dequantized exports.
        EXPECT_TRUE(torch::equal(m->weight(l), make_codec(q.spec)->dequantize(q))) << m->layers().at(l).name;
    }
    // The scales moved (the latent signs may not have crossed zero in four steps).
    bool moved = false;
    for (const auto& [l, q] : r.tensors)
        moved = moved || !torch::equal(q.part("scales").data, ptq.tensors.at(l).part("scales").data);
    EXPECT_TRUE(moved);
}
