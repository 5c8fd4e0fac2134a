// Token-limited reading of text files (core/analysis/text_data.h): with max_tokens only a prefix of the
// file is read, and the tokens are exactly the whole file's first max_tokens, for the three tokenizer
// families (the real model's HF BPE, Llama 2's SentencePiece, Qwen3's byte-level BPE) and limits from one
// token to beyond the first read; bytes past what was needed are not read, so a bad byte there is no error.
#include <gtest/gtest.h>

#include <fstream>

#include "analysis/text_data.h"
#include "model/tokenizer.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/test_paths.h"

namespace quench {
namespace {

void expect_prefix_tokens_equal_whole(const Tokenizer& tok, const std::string& path) {
    std::vector<int32_t> whole = tok.encode(read_text_file(path), false);
    if (tok.bos_id() >= 0) whole.insert(whole.begin(), tok.bos_id());
    for (const int64_t limit : {int64_t(1), int64_t(100), int64_t(4099), int64_t(20000), int64_t(60000)}) {
        SCOPED_TRACE("max_tokens " + std::to_string(limit));
        const std::vector<int32_t> got = tokenize_text_file(tok, path, true, limit);
        const auto n = std::min<std::size_t>(whole.size(), static_cast<std::size_t>(limit));
        ASSERT_EQ(got.size(), n);
        EXPECT_TRUE(std::equal(got.begin(), got.end(), whole.begin()));
    }
    EXPECT_EQ(tokenize_text_file(tok, path, true, 0), whole);
}

TEST(TextData, TokenLimitedReadsEqualTheWholeFilesFirstTokens) {
    const std::string wiki = test::shared_data("wikitext-2/wiki.test.raw");
    {
        SCOPED_TRACE("tinystories-656k (HF BPE)");
        const auto tok = load_tokenizer(test::real_model_dir());
        expect_prefix_tokens_equal_whole(*tok, test::eval_text());
        expect_prefix_tokens_equal_whole(*tok, wiki);
    }
    {
        SCOPED_TRACE("Llama 2 (SentencePiece)");
        const auto tok = load_sentencepiece_model(test::shared_data("llama2-tokenizer/tokenizer.model"));
        expect_prefix_tokens_equal_whole(*tok, wiki);
    }
    {
        SCOPED_TRACE("Qwen3 (byte-level BPE)");
        const auto tok = load_hf_tokenizer_json(test::shared_data("qwen3-tokenizer/tokenizer.json"));
        expect_prefix_tokens_equal_whole(*tok, wiki);
    }
}

TEST(TextData, OnlyThePrefixTheTokensNeedIsRead) {
    test::ScratchDir dir;
    const auto tok = load_tokenizer(test::real_model_dir());
    // 600 kB of good text, then a byte that is not UTF-8.
    const std::string good = test::read_bytes(test::train_text()).substr(0, 600000);
    const std::string path = dir.file("tail.txt");
    test::write_bytes(path, good + "caf\xe9\n");
    EXPECT_EQ(tokenize_text_file(*tok, path, true, 1000).size(), 1000u);
    const std::string e = test::error_of([&] { tokenize_text_file(*tok, path, true, 0); });
    EXPECT_TRUE(test::contains_all(e, {path, "not valid UTF-8 at byte " + std::to_string(good.size() + 3)})) << e;
    // A bad byte inside the prefix is reported with its offset in the file.
    test::write_bytes(path, "caf\xe9\n" + good);
    const std::string early = test::error_of([&] { tokenize_text_file(*tok, path, true, 1000); });
    EXPECT_TRUE(test::contains_all(early, {path, "not valid UTF-8 at byte 3"})) << early;
}

}  // namespace
}  // namespace quench
