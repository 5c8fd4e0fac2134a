// PackedLinear: x W^T through the packed kernels equals x W'^T with W' core's dequantized weight, up to
// fp32 summation order, for a codec of every kernel family, for any leading shape and a row count that is
// not a multiple of the kernels' batch of eight; settings no kernel reads and wrong inputs are errors. With
// int8 activations each layer runs its family's int8 GEMV (LiftQuant by table lookup) exactly as a direct
// kernel call does, or the fp32 one where the int8 path is missing or slower (ternary, QAM-W); a layer whose
// codes were re-laid for the lookup GEMV gives back the pages of the stored codes (mapped from a file here).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "quant/codec.h"
#include <fstream>

#include "model/mapped_file.h"
#include "quant/kernel_views.h"
#include "runtime/packed_linear.h"
#include "quench_kernels/packed_int8.h"
#include "support/errors.h"
#include "support/pages.h"
#include "support/test_paths.h"
#include "support/weights.h"

using namespace quench;
using quench::test::quantize_random;

TEST(PackedLinear, EqualsTheDequantizedProductForEveryKernelFamily) {
    const std::vector<std::string> specs = {"rtn:b=4,g=32",   "rtn:b=3,g=64,sym", "paretoq:b=2",
                                            "paretoq:b=1.58", "liftquant:D=16,d=8", "lcqat", "qamw:k=8,block=64"};
    auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const QuantizedTensor q = quantize_random(specs[i], 40, 128, i + 1);
        const auto Wd = make_codec(q.spec)->dequantize(q);
        const PackedLinear lin(q, 2);
        EXPECT_EQ(lin.out_features(), 40);
        EXPECT_EQ(lin.in_features(), 128);
        const auto x = torch::randn({3, 5, 128}, gen);  // 15 rows: a batch of 8 and a tail of 7
        const auto y = lin.forward(x);
        ASSERT_EQ(y.sizes(), (std::vector<int64_t>{3, 5, 40})) << specs[i];
        const auto ref = x.to(torch::kFloat64).matmul(Wd.to(torch::kFloat64).t());
        // Bound per output: fp32 rounding of a 128-term sum, relative to sum |W x|.
        const auto scale = x.abs().to(torch::kFloat64).matmul(Wd.abs().to(torch::kFloat64).t());
        const double worst = ((y.to(torch::kFloat64) - ref).abs() / scale).max().item<double>();
        EXPECT_LT(worst, 1e-5) << specs[i];
        // A single row goes through the same kernels.
        EXPECT_TRUE(torch::allclose(lin.forward(x[1][2]), y[1][2], 1e-6, 1e-7)) << specs[i];
    }
}

TEST(PackedLinear, RefusesSettingsNoKernelReadsAndWrongInputs) {
    const std::string polar = test::error_of(
        [] { PackedLinear(quantize_random("qamw:k=8,block=64,coding=polar", 8, 64, 1)); });
    EXPECT_NE(polar.find("no packed kernel"), std::string::npos) << "[" << polar << "]";
    const PackedLinear lin(quantize_random("rtn:b=4,g=32", 8, 64, 2));
    const std::string wrong = test::error_of([&] { lin.forward(torch::zeros({2, 63})); });
    EXPECT_NE(wrong.find("63"), std::string::npos) << wrong;
    EXPECT_NE(wrong.find("64"), std::string::npos) << wrong;
}

TEST(PackedLinear, Int8ActivationsRunTheFamilysInt8KernelOrStayFp32) {
    struct Case {
        std::string spec;
        bool int8;
    };
    const std::vector<Case> cases = {{"rtn:b=4,g=32", true},       {"paretoq:b=2", true}, {"rtn:b=8,g=0", true}, {"rtn:b=3,g=64", true},
                                     {"liftquant:D=16,d=8", true}, {"lcqat", true},       {"paretoq:b=1.58", false},
                                     {"qamw:k=8,block=64", false}};
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const QuantizedTensor q = quantize_random(cases[i].spec, 40, 128, i + 11);
        const PackedLinear lin(q, 2, PackedActivations::Int8), exact(q, 2);
        EXPECT_EQ(lin.int8_activations(), cases[i].int8) << cases[i].spec;
        EXPECT_FALSE(exact.int8_activations()) << cases[i].spec;
        const auto x = torch::randn({11, 128}, gen);  // a batch of 8 and a tail of 3
        const auto y = lin.forward(x);
        // The same kernel called directly, per batch of at most 8 rows.
        auto want = torch::empty({11, 40});
        const KernelView v = kernel_view(lin.tensor());
        for (int64_t r = 0; r < 11; r += 8) {
            const int64_t b = std::min<int64_t>(8, 11 - r);
            const float* xp = x.data_ptr<float>() + r * 128;
            float* yp = want.data_ptr<float>() + r * 40;
            const kernels::CpuOptions one{1, kernels::CpuPath::Auto};
            if (!cases[i].int8) kernel_gemv(v, xp, yp, b, one);
            else if (const auto* g = std::get_if<kernels::GridView>(&v)) kernels::grid_gemv_int8(*g, xp, yp, b, one);
            else if (const auto* w = std::get_if<kernels::LiftView>(&v)) kernels::lift_gemv_int8(*w, xp, yp, b, one);
            else kernels::lattice_gemv_int8(std::get<kernels::LatticeView>(v), xp, yp, b, one);
        }
        EXPECT_TRUE(torch::equal(y, want)) << cases[i].spec;
        // And it is still the layer's product: within the int8 paths' 2e-2 of sum |W x| (packed_int8.h).
        const auto Wd = make_codec(q.spec)->dequantize(q).to(torch::kFloat64);
        const auto ref = x.to(torch::kFloat64).matmul(Wd.t());
        const auto scale = x.abs().to(torch::kFloat64).matmul(Wd.abs().t());
        EXPECT_LT(((y.to(torch::kFloat64) - ref).abs() / scale).max().item<double>(), 2e-2) << cases[i].spec;
        if (cases[i].int8) {
            EXPECT_FALSE(torch::equal(y, exact.forward(x))) << cases[i].spec;
        }
    }
}

TEST(PackedLinear, LookupLayersGiveBackTheStoredCodesPages) {
    // A LiftQuant layer whose codes live in a mapped file, as a packed checkpoint's do: 256 x 512 weights,
    // (512 / 8) * 16 sign bits per row, 32 KiB of codes.
    const QuantizedTensor q = quantize_random("liftquant:D=16,d=8", 256, 512, 5);
    const at::Tensor& codes = q.part("codes").data;
    test::ScratchDir dir;
    const std::string path = dir.file("codes.bin");
    std::ofstream(path, std::ios::binary).write(static_cast<const char*>(codes.data_ptr()), static_cast<std::streamsize>(codes.nbytes()));
    test::sync_to_disk(path);  // dirty pages are written back before they can go, which a busy disk delays
    const auto file = std::make_shared<MappedFile>(path);
    QuantizedTensor mapped = q;
    for (auto& part : mapped.parts)
        if (part.name == "codes")
            part.data = at::from_blob(const_cast<uint8_t*>(file->data()), codes.sizes(), [file](void*) {}, codes.options());
    ASSERT_TRUE(torch::equal(mapped.part("codes").data, codes));
    const std::size_t page = test::page_size(), whole = codes.nbytes() / page;  // the mapping starts on a page
    ASSERT_GE(whole, 4u);
    if (test::present_pages(file->data(), whole * page) < 0 || !test::can_release_pages())
        GTEST_SKIP() << "pagemap or MADV_PAGEOUT unavailable";
    ASSERT_EQ(test::present_pages(file->data(), whole * page), static_cast<int64_t>(whole));  // read above

    const PackedLinear exact(mapped, 2);
    EXPECT_EQ(test::present_pages(file->data(), whole * page), static_cast<int64_t>(whole));  // fp32 keeps them
    // Without AVX2 there is no lookup: int8 runs on the stored codes, which must then stay.
    const int64_t kept = kernels::cpu_has_avx2() ? 0 : static_cast<int64_t>(whole);
    const PackedLinear lin(mapped, 2, PackedActivations::Int8);
    EXPECT_EQ(test::present_pages(file->data(), whole * page), kept);
    // Its product is unchanged, and a lookup layer never brings them back.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    const auto x = torch::randn({3, 512}, gen);
    const auto y = lin.forward(x);
    EXPECT_EQ(test::present_pages(file->data(), whole * page), kept);
    EXPECT_TRUE(torch::equal(y, PackedLinear(q, 2, PackedActivations::Int8).forward(x)));
}
