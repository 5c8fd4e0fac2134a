// SentencePiece .model files through libsentencepiece: the Llama 2 tokenizer's well-known ids, BOS/EOS
// from the model and from tokenizer_config.json, round trips on real text, and errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "model/tokenizer.h"
#include "support/files.h"
#include "support/test_paths.h"

namespace quench {
namespace {

using Ids = std::vector<int32_t>;

std::string llama2_model() { return test::shared_data("llama2-tokenizer/tokenizer.model"); }

const Tokenizer& llama2() {
    static const std::unique_ptr<Tokenizer> t = load_sentencepiece_model(llama2_model());
    return *t;
}

TEST(SentencePieceTokenizer, Llama2Properties) {
    EXPECT_EQ(llama2().kind(), "sentencepiece");
    EXPECT_EQ(llama2().vocab_size(), 32000);
    EXPECT_EQ(llama2().bos_id(), 1);
    EXPECT_EQ(llama2().eos_id(), 2);
    EXPECT_EQ(llama2().token(1), "<s>");
    EXPECT_EQ(llama2().token(15043), "\xE2\x96\x81Hello");  // "▁Hello"
    EXPECT_THROW(llama2().token(32000), Error);
}

TEST(SentencePieceTokenizer, Llama2KnownIds) {
    EXPECT_EQ(llama2().encode("Hello world"), (Ids{1, 15043, 3186}));
    EXPECT_EQ(llama2().encode("Hello world", false), (Ids{15043, 3186}));
    EXPECT_EQ(llama2().encode(""), (Ids{1}));
    // Characters outside the vocabulary fall back to <0xXX> byte pieces (ids 3..258).
    const Ids emoji = llama2().encode("\xF0\x9F\x99\x82", false);
    for (int32_t id : emoji) EXPECT_TRUE(id == 29871 || (id >= 3 && id < 259)) << id;
}

TEST(SentencePieceTokenizer, DecodeSkipsOrKeepsSpecials) {
    EXPECT_EQ(llama2().decode({1, 15043, 3186, 2}), "Hello world");
    EXPECT_EQ(llama2().decode({1, 15043, 3186, 2}, false), "<s>Hello world</s>");
    EXPECT_THROW(llama2().decode({32000}), Error);
}

// Encode throughput on the same texts is measured by tests/bench/bench_tokenizer.
void expect_round_trip(const std::string& rel) {
    const std::string text = test::read_required(test::shared_data(rel));
    const Ids ids = llama2().encode(text);
    EXPECT_TRUE(llama2().decode(ids) == text) << rel << ": round trip differs";
}

TEST(SentencePieceTokenizer, Llama2RoundTripsTinyStories) {
    expect_round_trip("tinystories-valid/tinystories_val.eval.txt");
}

TEST(SentencePieceTokenizer, Llama2RoundTripsWikiText2) {
    expect_round_trip("wikitext-2/wikitext-2-raw-v1.test.joined.lf.txt");
}

TEST(SentencePieceTokenizer, InvalidUtf8Throws) {
    try {
        llama2().encode("Hello \xE2\x96");
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "text is not valid UTF-8 at byte 6");
    }
}

TEST(SentencePieceTokenizer, LoadTokenizerUsesModelAndConfig) {
    test::ScratchDir dir;
    std::filesystem::copy_file(llama2_model(), dir.file("tokenizer.model"));
    auto tok = load_tokenizer(dir.path().string());
    EXPECT_EQ(tok->kind(), "sentencepiece");
    EXPECT_EQ(tok->encode("Hello world"), (Ids{1, 15043, 3186}));

    std::ofstream(dir.file("tokenizer_config.json"))
        << R"({"add_bos_token": false, "add_eos_token": true, "bos_token": {"content": "<s>"}, "eos_token": "</s>"})";
    tok = load_tokenizer(dir.path().string());
    EXPECT_EQ(tok->encode("Hello world"), (Ids{15043, 3186, 2}));
    EXPECT_EQ(tok->bos_id(), 1);

    std::ofstream(dir.file("tokenizer_config.json")) << R"({"eos_token": "<nope>"})";
    try {
        load_tokenizer(dir.path().string());
        ADD_FAILURE() << "no error for an unknown eos_token";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("eos_token"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("<nope>"), std::string::npos) << e.what();
    }
}

TEST(SentencePieceTokenizer, TokenizerJsonIsPreferredOverModel) {
    test::ScratchDir dir;
    std::filesystem::copy_file(llama2_model(), dir.file("tokenizer.model"));
    std::filesystem::copy_file(test::shared_data("tinystories-656k/tokenizer.json"), dir.file("tokenizer.json"));
    EXPECT_EQ(load_tokenizer(dir.path().string())->kind(), "bpe-sentencepiece");
}

TEST(SentencePieceTokenizer, MissingModelFileNamesThePath) {
    const std::string path = "/nonexistent-quench-dir/tokenizer.model";
    try {
        load_sentencepiece_model(path);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace quench
