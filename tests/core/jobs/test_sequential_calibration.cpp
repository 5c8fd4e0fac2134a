// One calibration walk (core/jobs/model_quantizer.h, issue 19): with full-precision inputs every layer is
// quantized from the statistics a whole-model capture gives; with quantized inputs (the default) the layers
// of block 1 are quantized from the inputs a model whose block 0 is already quantized produces, computed
// here independently; spilling the hidden states to disk changes nothing and leaves no file, also on cancel.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "analysis/layer_capture.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "io/model_loading.h"
#include "jobs/model_quantizer.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "quant/dequantized_layers.h"
#include "support/files.h"
#include "support/progress.h"
#include "support/test_paths.h"

using namespace quench;

namespace {

const std::string kSpec = "gptq:b=3,g=32";

const std::vector<int32_t>& calib() {
    static const std::vector<int32_t> ids =
        tokenize_text_file(*load_tokenizer(test::real_model_dir()), test::train_text(), true, 2048);
    return ids;
}

QuantizeOptions options(CalibInputs inputs) {
    QuantizeOptions o;
    o.capture.ctx = 128;
    o.capture.sample_rows = 64;
    o.calib_inputs = inputs;
    return o;
}

// What the quantizer should give for `layers` when their inputs are those of `model` as it stands: a whole
// forward capture, then each layer quantized with its own seed.
std::map<std::size_t, QuantizedTensor> quantized_from_capture(const LlamaModel& model, const std::vector<std::size_t>& layers,
                                                              const QuantizeOptions& o) {
    const auto stats = capture_layer_inputs(model, layers, calib(), o.capture);
    const auto codec = make_codec(CodecSpec::parse(kSpec));
    std::map<std::size_t, QuantizedTensor> out;
    for (std::size_t l : layers) {
        CalibStats c;
        c.hessian = stats.at(l).hessian();
        c.act_scale = stats.at(l).abs_mean;
        QuantizeContext ctx{&c, layer_seed(o.seed, model.layers().at(l).name), nullptr};
        out.emplace(l, codec->quantize(model.original_weight(l), ctx));
    }
    return out;
}

bool same_codes(const QuantizedTensor& a, const QuantizedTensor& b) {
    if (a.parts.size() != b.parts.size()) return false;
    for (std::size_t i = 0; i < a.parts.size(); ++i)
        if (!torch::equal(a.parts[i].data, b.parts[i].data)) return false;
    return true;
}

}  // namespace

TEST(SequentialCalibration, FullPrecisionInputsQuantizeFromTheWholeModelCapture) {
    auto m = load_model(test::real_model_dir());
    const auto layers = m->layers().select_glob("model.layers.*");
    const QuantizeOptions o = options(CalibInputs::FullPrecision);
    const auto want = quantized_from_capture(*m, layers, o);
    const auto r = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse(kSpec)), calib(), o);
    ASSERT_EQ(r.tensors.size(), layers.size());
    for (std::size_t l : layers) EXPECT_TRUE(same_codes(r.tensors.at(l), want.at(l))) << m->layers().at(l).name;
    // An empty plan walks nowhere.
    EXPECT_TRUE(quantize_model_layers(*m, {}, calib(), o).layers.empty());
}

TEST(SequentialCalibration, Block1IsCalibratedOnTheOutputsOfQuantizedBlock0) {
    auto m = load_model(test::real_model_dir());
    const auto block0 = m->layers().select_glob("model.layers.0.*");
    const auto block1 = m->layers().select_glob("model.layers.1.*");
    const auto layers = m->layers().select_glob("model.layers.*");
    const QuantizeOptions o = options(CalibInputs::Quantized);
    EXPECT_EQ(QuantizeOptions().calib_inputs, CalibInputs::Quantized) << "the default";
    const auto seq = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse(kSpec)), calib(), o);

    // Block 0 sees the full-precision embeddings either way.
    auto ref = load_model(test::real_model_dir());
    const auto want0 = quantized_from_capture(*ref, block0, o);
    for (std::size_t l : block0) EXPECT_TRUE(same_codes(seq.tensors.at(l), want0.at(l))) << ref->layers().at(l).name;
    // Block 1: its inputs come from block 0 with those codes.
    for (std::size_t l : block0) replace_with_quantized(*ref, l, want0.at(l));
    const auto want1 = quantized_from_capture(*ref, block1, o);
    for (std::size_t l : block1) EXPECT_TRUE(same_codes(seq.tensors.at(l), want1.at(l))) << ref->layers().at(l).name;
    // ... which are not the full-precision model's inputs: the two modes differ from block 1 on.
    auto fp = load_model(test::real_model_dir());
    const auto fp_run = quantize_model_layers(*fp, uniform_plan(layers, CodecSpec::parse(kSpec)), calib(),
                                              options(CalibInputs::FullPrecision));
    int differ = 0;
    for (std::size_t l : block1) differ += !same_codes(seq.tensors.at(l), fp_run.tensors.at(l));
    EXPECT_GT(differ, 0);
}

TEST(SequentialCalibration, SpilledHiddenStatesGiveTheSameCodesAndLeaveNoFile) {
    test::ScratchDir dir;
    auto a = load_model(test::real_model_dir());
    const auto layers = a->layers().select_glob("model.layers.*");
    const auto plan = uniform_plan(layers, CodecSpec::parse(kSpec));
    const auto resident = quantize_model_layers(*a, plan, calib(), options(CalibInputs::Quantized));
    QuantizeOptions spill = options(CalibInputs::Quantized);
    spill.hidden_memory_cap = 0;  // every batch of hidden states through the scratch file
    spill.spill_dir = dir.path().string();
    auto b = load_model(test::real_model_dir());
    const auto spilled = quantize_model_layers(*b, plan, calib(), spill);
    for (std::size_t l : layers) EXPECT_TRUE(same_codes(spilled.tensors.at(l), resident.tensors.at(l)));
    EXPECT_TRUE(test::entries(dir.path().string()).empty());
    // Cancelled in the middle of the walk: stops, and still no file.
    auto c = load_model(test::real_model_dir());
    test::CancelAfter cancel(6);
    EXPECT_THROW(quantize_model_layers(*c, plan, calib(), spill, &cancel), Cancelled);
    EXPECT_TRUE(test::entries(dir.path().string()).empty());
    EXPECT_EQ(calib_inputs_from_name("fp"), CalibInputs::FullPrecision);
    EXPECT_THROW(calib_inputs_from_name("float"), Error);
}
