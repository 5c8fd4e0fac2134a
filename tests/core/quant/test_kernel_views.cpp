// kernel_views: which kernel family reads each codec setting, views whose scalars follow the spec and whose
// pointers are the parts' own data, and quench::Error naming the spec and the part for every part that does
// not fit (missing, wrong dtype, wrong size, not contiguous), an unknown codec, a setting no kernel reads and
// a view of the wrong family. (The kernels themselves are checked through these views in tests/kernels.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "quant/codec.h"
#include "quant/kernel_views.h"
#include "support/errors.h"
#include "support/weights.h"

using namespace quench;
using quench::test::quantize_random;
namespace qk = quench::kernels;

namespace {

at::Tensor& part_data(QuantizedTensor& q, const std::string& name) {
    for (auto& p : q.parts)
        if (p.name == name) return p.data;
    throw std::logic_error("no part " + name);
}

// fn throws quench::Error whose message holds the spec and every one of `parts`.
void expect_view_error(const std::function<void()>& fn, const CodecSpec& spec, const std::vector<std::string>& parts) {
    const std::string msg = test::error_of(fn);
    ASSERT_FALSE(msg.empty()) << "no quench::Error for " << spec.to_string();
    EXPECT_NE(msg.find("'" + spec.to_string() + "'"), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

}  // namespace

TEST(KernelViews, FamilyOfEveryCodecSetting) {
    const std::vector<std::pair<std::string, KernelFamily>> table = {
        {"rtn:b=4,g=128", KernelFamily::Grid},      {"gptq:b=3,g=64", KernelFamily::Grid},
        {"gptq:b=2,grid=paretoq", KernelFamily::Grid}, {"paretoq:b=1.58", KernelFamily::Grid},
        {"liftquant:D=16,d=8", KernelFamily::Lift}, {"lcqat", KernelFamily::Lattice},
        {"qamw:k=8", KernelFamily::Qamw},           {"qamw:k=8,coding=polar", KernelFamily::None}};
    for (const auto& [spec, family] : table)
        EXPECT_EQ(kernel_family(CodecSpec::parse(spec)), family) << spec << " -> " << kernel_family_name(family);
    EXPECT_STREQ(kernel_family_name(KernelFamily::Lattice), "lattice");
}

TEST(KernelViews, GridViewsFollowTheSpecAndPointIntoTheParts) {
    const QuantizedTensor asym = quantize_random("rtn:b=3,g=32", 5, 64);
    const qk::GridView a = grid_view(asym);
    EXPECT_EQ(a.kind, qk::GridKind::AsymInt);
    EXPECT_EQ(a.bits, 3);
    EXPECT_EQ(a.group, 32);
    EXPECT_EQ(a.rows, 5);
    EXPECT_EQ(a.cols, 64);
    EXPECT_EQ(a.codes, asym.part("codes").data.data_ptr<uint8_t>());
    EXPECT_EQ(a.code_bytes, 5 * 64 * 3 / 8);
    EXPECT_EQ(static_cast<const void*>(a.scales), asym.part("scales").data.data_ptr());
    EXPECT_EQ(a.zeros, asym.part("zeros").data.data_ptr<uint8_t>());
    EXPECT_EQ(a.zero_bytes, (5 * 2 * 3 + 7) / 8);

    const std::vector<std::tuple<std::string, qk::GridKind, int, int64_t>> table = {
        {"rtn:b=4,g=0,sym", qk::GridKind::SymInt, 4, 64},   {"paretoq:b=1", qk::GridKind::Binary, 1, 64},
        {"paretoq:b=1.58", qk::GridKind::Ternary, 0, 64},   {"paretoq:b=2", qk::GridKind::Seq, 2, 64},
        {"paretoq:b=4", qk::GridKind::SymInt, 4, 64},       {"gptq:b=1.58,g=32,grid=paretoq", qk::GridKind::Ternary, 0, 32}};
    for (const auto& [spec, kind, bits, group] : table) {
        const QuantizedTensor q = quantize_random(spec, 3, 64);
        const qk::GridView v = grid_view(q);
        EXPECT_EQ(v.kind, kind) << spec;
        EXPECT_EQ(v.bits, bits) << spec;
        EXPECT_EQ(v.group, group) << spec;
        EXPECT_EQ(v.zeros, nullptr) << spec;
        EXPECT_EQ(v.code_bytes, q.part("codes").data.numel()) << spec;
        EXPECT_EQ(std::get<qk::GridView>(kernel_view(q)).codes, v.codes) << spec;
    }
}

TEST(KernelViews, OtherFamiliesFollowTheSpecAndPointIntoTheParts) {
    const QuantizedTensor lift = quantize_random("liftquant:D=16,d=8,awq", 3, 32);
    const qk::LiftView l = std::get<qk::LiftView>(kernel_view(lift));
    EXPECT_EQ(l.D, 16);
    EXPECT_EQ(l.d, 8);
    EXPECT_EQ(l.code_bytes, 3 * 4 * 16 / 8);
    EXPECT_EQ(static_cast<const void*>(l.M), lift.part("M").data.data_ptr());
    EXPECT_EQ(l.signs, lift.part("signs").data.data_ptr<uint8_t>());
    EXPECT_EQ(static_cast<const void*>(l.act_scale), lift.part("act_scale").data.data_ptr());
    const qk::LiftView plain = lift_view(quantize_random("liftquant:D=16,d=8,had=0", 3, 32));
    EXPECT_EQ(plain.signs, nullptr);
    EXPECT_EQ(plain.act_scale, nullptr);

    const QuantizedTensor lattice = quantize_random("lcqat:had=16,hessian=0", 24, 32);
    const qk::LatticeView t = std::get<qk::LatticeView>(kernel_view(lattice));
    EXPECT_EQ(t.had_in, 16);
    EXPECT_EQ(t.had_out, 8);  // the largest power of two <= 16 dividing 24
    EXPECT_EQ(t.A, lattice.part("A").data.data_ptr<float>());
    EXPECT_EQ(static_cast<const void*>(t.sv), lattice.part("sv").data.data_ptr());

    const QuantizedTensor qamw = quantize_random("qamw:k=6,block=16,signs", 3, 32, 42);
    const qk::QamwView m = std::get<qk::QamwView>(kernel_view(qamw));
    EXPECT_EQ(m.k, 6);
    EXPECT_EQ(m.block, 16);
    EXPECT_TRUE(m.signs);
    EXPECT_EQ(m.sign_seed, 42u);
    EXPECT_EQ(m.code_bytes, 3 * 16 * 6 / 8);
    EXPECT_EQ(static_cast<const void*>(m.codebook), qamw.part("codebook").data.data_ptr());
    EXPECT_EQ(m.act_scale, nullptr);
}

TEST(KernelViews, PartsThatDoNotFitNameTheSpecAndThePart) {
    const QuantizedTensor good = quantize_random("rtn:b=4,g=32", 4, 64);
    QuantizedTensor q = good;
    part_data(q, "scales") = good.part("scales").data.to(torch::kFloat);
    expect_view_error([&] { grid_view(q); }, q.spec, {"part 'scales'", "Float", "Half"});
    q = good;
    part_data(q, "codes") = good.part("codes").data.narrow(0, 0, 127);
    expect_view_error([&] { kernel_view(q); }, q.spec, {"part 'codes'", "holds 127 values, expected 128"});
    q = good;
    part_data(q, "scales") = good.part("scales").data.view({4, 2}).t();
    expect_view_error([&] { grid_view(q); }, q.spec, {"part 'scales'", "not contiguous"});
    q = good;
    q.parts.erase(q.parts.begin() + 2);  // zeros
    expect_view_error([&] { grid_view(q); }, q.spec, {"missing part 'zeros'"});

    QuantizedTensor lift = quantize_random("liftquant:D=16,d=8", 3, 32);
    part_data(lift, "signs") = torch::zeros({3}, torch::kUInt8);
    expect_view_error([&] { lift_view(lift); }, lift.spec, {"part 'signs'", "holds 3 values, expected 4"});
    QuantizedTensor lattice = quantize_random("lcqat:hessian=0", 4, 128);
    part_data(lattice, "A") = lattice.part("A").data.to(torch::kDouble);
    expect_view_error([&] { lattice_view(lattice); }, lattice.spec, {"part 'A'", "Double", "Float"});
    QuantizedTensor qamw = quantize_random("qamw:k=6,block=16,signs", 3, 32);
    part_data(qamw, "sign_seed") = torch::zeros({1}, torch::kInt);
    expect_view_error([&] { qamw_view(qamw); }, qamw.spec, {"part 'sign_seed'", "Int", "Long"});
    part_data(qamw, "sign_seed") = torch::zeros({2}, torch::kLong);
    expect_view_error([&] { qamw_view(qamw); }, qamw.spec, {"part 'sign_seed'", "holds 2 values, expected 1"});
}

TEST(KernelViews, UnknownCodecsUnreadSettingsAndWrongFamiliesAreErrors) {
    QuantizedTensor unknown;  // a default spec names no codec
    unknown.rows = unknown.cols = 4;
    expect_view_error([&] { kernel_view(unknown); }, unknown.spec, {"unknown codec ''", "rtn", "qamw"});
    expect_view_error([&] { kernel_family(unknown.spec); }, unknown.spec, {"unknown codec ''"});

    const QuantizedTensor polar = quantize_random("qamw:k=6,block=16,coding=polar", 3, 32);
    expect_view_error([&] { kernel_view(polar); }, polar.spec, {"no packed kernel reads this codec setting"});
    expect_view_error([&] { qamw_view(polar); }, polar.spec, {"no packed kernel reads this codec setting"});

    const QuantizedTensor rtn = quantize_random("rtn:b=4,g=32", 4, 64);
    expect_view_error([&] { lift_view(rtn); }, rtn.spec,
                      {"a lift view was asked for", "the grid kernel reads this codec"});
    expect_view_error([&] { lattice_view(rtn); }, rtn.spec, {"a lattice view"});
}
