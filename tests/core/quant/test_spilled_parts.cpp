// Codes spilled to a temporary file (quant/spilled_parts.h) keep their bytes, leave no file behind, and
// report a directory they cannot use by name.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "quant/codec.h"
#include "quant/spilled_parts.h"
#include "support/errors.h"
#include "support/test_paths.h"

using namespace quench;

TEST(SpilledParts, KeepTheirBytesAndLeaveNoFileBehind) {
    test::ScratchDir dir;
    const auto codec = make_codec("rtn:b=4,g=128");
    const at::Tensor w = torch::randn({512, 1024}, at::make_generator<at::CPUGeneratorImpl>(1)) * 0.02;
    const QuantizedTensor q = codec->quantize(w, {});
    const at::Tensor wq = codec->dequantize(q);
    QuantizedTensor s;
    {
        PartSpill spill(dir.path().string());
        s = spill.spill(q);
        EXPECT_GE(spill.bytes(), q.part("codes").data.nbytes());
    }  // the spill object goes; the views keep the file's data
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the temporary file has no name";
    ASSERT_EQ(s.parts.size(), q.parts.size());
    bool moved = false;
    for (std::size_t i = 0; i < q.parts.size(); ++i) {
        EXPECT_TRUE(torch::equal(s.parts[i].data, q.parts[i].data)) << q.parts[i].name;
        moved |= s.parts[i].data.data_ptr() != q.parts[i].data.data_ptr();
    }
    EXPECT_TRUE(moved) << "the 256 KiB codes are spilled";
    EXPECT_TRUE(torch::equal(codec->dequantize(s), wq));
    forget(s);  // pages leave the resident set and come back from the file on the next read
    EXPECT_TRUE(torch::equal(codec->dequantize(s), wq));
    forget(q);  // parts in ordinary memory are left alone
    EXPECT_TRUE(torch::equal(codec->dequantize(q), wq));
}

TEST(SpilledParts, ADirectoryThatCannotHoldTheFileIsNamed) {
    const std::string missing = "/nonexistent-quench-dir";
    const std::string e = test::error_of([&] { PartSpill spill(missing); });
    EXPECT_NE(e.find(missing), std::string::npos) << e;
    EXPECT_NE(e.find("temporary file"), std::string::npos) << e;
}
