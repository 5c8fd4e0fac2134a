// Hugging Face tokenizer.json BPE: golden ids from Hugging Face's own implementation, round trips on
// real text, the stage variants other LLM families use (Metaspace, GPT-2 ByteLevel regex), added-token
// options on a tiny hand-written tokenizer, and the error messages.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "model/hf_bpe_tokenizer.h"
#include "model/hf_pipeline.h"
#include "model/tokenizer.h"
#include "model/utf8.h"
#include "support/files.h"
#include "support/test_paths.h"

namespace quench {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// Loading the 11 MB Qwen3 file takes a fraction of a second; share one instance.
const Tokenizer& qwen() {
    static const std::unique_ptr<Tokenizer> t = load_tokenizer(test::shared_data("qwen3-tokenizer"));
    return *t;
}

const Tokenizer& stories() {
    static const std::unique_ptr<Tokenizer> t = load_tokenizer(test::real_model_dir());
    return *t;
}

// Asserts every string of a golden file encodes (with special tokens) to the recorded ids.
void expect_golden(const Tokenizer& tok, const std::string& golden_file) {
    const json golden = json::parse(test::read_required(test::shared_data("golden/" + golden_file)));
    ASSERT_EQ(golden.size(), 17u);
    for (const json& e : golden) {
        const std::string text = e["text"].get<std::string>();
        EXPECT_EQ(tok.encode(text, true), e["ids"].get<Ids>()) << "text: " << text;
    }
}

// A tokenizer.json variant written to a scratch dir: the given file with some top-level fields replaced.
std::unique_ptr<Tokenizer> variant(const test::ScratchDir& dir, const std::string& source, const json& changes) {
    json j = json::parse(test::read_required(source));
    for (const auto& item : changes.items()) j[item.key()] = item.value();
    write_file(dir.file("tokenizer.json"), j.dump());
    return load_hf_tokenizer_json(dir.file("tokenizer.json"));
}

TEST(HfTokenizer, TinyStories656kMatchesHuggingFaceGolden) {
    expect_golden(stories(), "tinystories-656k-tokenizer.ids.json");
}

TEST(HfTokenizer, Qwen3MatchesHuggingFaceGolden) { expect_golden(qwen(), "qwen3-tokenizer.ids.json"); }

TEST(HfTokenizer, PropertiesAndSpecialIds) {
    EXPECT_EQ(stories().kind(), "bpe-sentencepiece");
    EXPECT_EQ(stories().vocab_size(), 2048);
    EXPECT_EQ(stories().bos_id(), 1);
    EXPECT_EQ(stories().eos_id(), 2);  // from tokenizer_config.json; the template only adds BOS
    EXPECT_EQ(stories().token(80), "\xE2\x96\x81");
    EXPECT_EQ(stories().encode("Hello world", false), (Ids{80, 1288, 139, 410, 555}));

    EXPECT_EQ(qwen().kind(), "bpe-bytelevel");
    EXPECT_EQ(qwen().vocab_size(), 151669);  // 151643 BPE entries + 26 added tokens
    EXPECT_EQ(qwen().bos_id(), -1);
    EXPECT_EQ(qwen().eos_id(), 151645);  // <|im_end|> per tokenizer_config.json
    EXPECT_EQ(qwen().token(9707), "Hello");
    EXPECT_EQ(qwen().token(1879), "\xC4\xA0world");  // "Ġworld"

    // Without the model directory's config, BOS/EOS come from the post-processor template.
    const auto direct = load_hf_tokenizer_json(test::shared_data("tinystories-656k/tokenizer.json"));
    EXPECT_EQ(direct->bos_id(), 1);
    EXPECT_EQ(direct->eos_id(), -1);
}

TEST(HfTokenizer, AddedTokensAreMatchedInRawTextAndSkippedOnDecode) {
    const std::string text = "<|im_start|>user\nHi there<|im_end|>\n<think>";
    const Ids ids = qwen().encode(text);
    const Ids body = qwen().encode("user\nHi there");
    Ids expected{151644};
    expected.insert(expected.end(), body.begin(), body.end());
    expected.push_back(151645);
    const Ids newline = qwen().encode("\n");
    expected.insert(expected.end(), newline.begin(), newline.end());
    expected.push_back(151667);  // <think> is an added token but not a special one
    EXPECT_EQ(ids, expected);
    EXPECT_EQ(qwen().decode(ids, false), text);
    EXPECT_EQ(qwen().decode(ids, true), "user\nHi there\n<think>");
}

TEST(HfTokenizer, ByteLevelDecodeOfPartialCharacterIsReplacementChar) {
    // The single-byte tokens of U+1F642's four UTF-8 bytes, looked up through the GPT-2 byte alphabet.
    const auto& hf = dynamic_cast<const HfBpeTokenizer&>(qwen());
    Ids bytes;
    for (unsigned char b : std::string("\xF0\x9F\x99\x82")) {
        std::string t;
        utf8::append(t, hf::byte_to_char(b));
        bytes.push_back(hf.token_to_id(t));
        ASSERT_GE(bytes.back(), 0);
    }
    EXPECT_EQ(qwen().decode(bytes), "\xF0\x9F\x99\x82");
    EXPECT_EQ(qwen().decode({bytes[0], bytes[1]}), "\xEF\xBF\xBD");  // one U+FFFD per maximal bad subpart
    EXPECT_EQ(qwen().decode({bytes[1]}), "\xEF\xBF\xBD");
}

TEST(HfTokenizer, SentencePieceStyleDecodeKeepsSpecialsThroughDecoder) {
    const Ids ids = stories().encode("Hello world");
    EXPECT_EQ(stories().decode(ids), "Hello world");
    // All tokens run through the decoder chain, so Strip sees "<|start_story|>" first and keeps the space.
    EXPECT_EQ(stories().decode(ids, false), "<|start_story|> Hello world");
}

// Encode and decode throughput (cold and warm word cache) is measured by tests/bench/bench_tokenizer.
TEST(HfTokenizer, Qwen3RoundTripsWikiText2) {
    const std::string text = test::read_required(test::shared_data("wikitext-2/wikitext-2-raw-v1.test.joined.lf.txt"));
    ASSERT_GT(text.size(), 1000000u);
    const Ids ids = qwen().encode(text, true);
    EXPECT_TRUE(qwen().decode(ids) == text) << "round trip differs";
    // A second encode is served from the word cache and gives the same ids.
    EXPECT_EQ(qwen().encode(text, true), ids);
}

TEST(HfTokenizer, Qwen3RoundTripsTinyStories) {
    const std::string text = test::read_required(test::shared_data("tinystories-valid/tinystories_val.eval.txt"));
    EXPECT_TRUE(qwen().decode(qwen().encode(text)) == text);
}

TEST(HfTokenizer, TinyStories656kRoundTripsInVocabularyText) {
    const std::string text = test::read_required(test::shared_data("tinystories-valid/tinystories_val.eval.txt"));
    // Characters the 2048-entry vocabulary lacks (it has no <0xXX> byte tokens) become <unk>.
    const Ids ids = stories().encode(text);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0);
    EXPECT_TRUE(stories().decode(ids) == text) << "round trip differs";
}

TEST(HfTokenizer, UnknownCharactersFuseIntoOneUnk) {
    EXPECT_EQ(stories().encode("a=\t=b", false), (Ids{85, 0, 54}));
    EXPECT_EQ(stories().decode({85, 0, 54}), "ab");
}

TEST(HfTokenizer, InvalidUtf8Throws) {
    for (const auto& [text, at] : std::vector<std::pair<std::string, int>>{
             {"abc\xFF", 3}, {"\xC3\x28", 0}, {"ok \xC0\x80", 3}, {"\xED\xA0\x80", 0}, {"ab\xE4\xB8", 2}}) {
        try {
            qwen().encode(text);
            ADD_FAILURE() << "no error for byte " << at;
        } catch (const Error& e) {
            EXPECT_EQ(std::string(e.what()), "text is not valid UTF-8 at byte " + std::to_string(at));
        }
    }
    EXPECT_THROW(stories().encode("\x80"), Error);
}

TEST(HfTokenizer, DecodeRejectsOutOfRangeIds) {
    EXPECT_THROW(qwen().decode({151669}), Error);
    EXPECT_THROW(stories().decode({-1}), Error);
    EXPECT_THROW(stories().token(2048), Error);
}

// Llama-2/Mistral tokenizer.json files spell the SentencePiece convention as a Metaspace pre-tokenizer
// instead of Prepend/Replace normalizers; with split off both give the same BPE input.
TEST(HfTokenizer, MetaspaceVariantsMatchPrependReplaceStyle) {
    const std::string src = test::shared_data("tinystories-656k/tokenizer.json");
    auto metaspace = [&](const test::ScratchDir& dir, const std::string& scheme, bool split) {
        const json m{{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", scheme}, {"split", split}};
        return variant(dir, src, {{"normalizer", nullptr}, {"pre_tokenizer", m}, {"decoder", m}});
    };
    test::ScratchDir d1, d2, d3, d4;
    const auto always = metaspace(d1, "always", false), first = metaspace(d2, "first", false);
    const auto never = metaspace(d3, "never", false), split = metaspace(d4, "always", true);
    const json golden = json::parse(
        test::read_required(test::shared_data("golden/tinystories-656k-tokenizer.ids.json")));
    for (const json& e : golden) {
        const std::string text = e["text"].get<std::string>();
        // Metaspace does not prepend a second '▁' to text that already starts with a space.
        const std::string as_prepend = text.rfind(' ', 0) == 0 ? text.substr(1) : text;
        EXPECT_EQ(always->encode(text), stories().encode(as_prepend)) << text;
        EXPECT_EQ(first->encode(text), stories().encode(as_prepend)) << text;
    }
    EXPECT_EQ(always->decode(always->encode("Once upon a time, there was a little girl.")),
              "Once upon a time, there was a little girl.");
    // The decoder drops every '▁' of the first token (tokenizers does the same), unless scheme is never.
    EXPECT_EQ(always->decode({80, 80}), " ");
    EXPECT_EQ(never->decode({80, 80}), "  ");
    // "first" prepends only at the start of the text, not after an added token.
    Ids hello = never->encode("\xE2\x96\x81Hello", false), world = never->encode("world", false);
    Ids expected{1};
    expected.insert(expected.end(), hello.begin(), hello.end());
    expected.push_back(2);
    Ids with_first = expected;
    with_first.insert(with_first.end(), world.begin(), world.end());
    EXPECT_EQ(first->encode("Hello<|end_story|>world"), with_first);
    // split: every '▁' starts a new word, so no merge crosses a word boundary.
    Ids words = always->encode("Hello", false), w2 = always->encode("world", false);
    words.insert(words.end(), w2.begin(), w2.end());
    EXPECT_EQ(split->encode("Hello world", false), words);
}

// Llama 3 / SmolLM / GPT-2 use the ByteLevel pre-tokenizer's own GPT-2 regex. On text where that regex
// splits like Qwen's, the ids must equal Qwen's golden ids.
TEST(HfTokenizer, ByteLevelPreTokenizerWithGpt2Regex) {
    test::ScratchDir dir;
    const json bl{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    const auto gpt2 = variant(dir, test::shared_data("qwen3-tokenizer/tokenizer.json"), {{"pre_tokenizer", bl}});
    EXPECT_EQ(gpt2->kind(), "bpe-bytelevel");
    for (const char* text : {"Hello world", "Once upon a time, there was a little girl.", "I'm can't won't they're we've"})
        EXPECT_EQ(gpt2->encode(text), qwen().encode(text)) << text;
    EXPECT_EQ(gpt2->decode(gpt2->encode("numbers 1234567")), "numbers 1234567");
    // GPT-2's \s+(?!\S) leaves the last newline to the next piece; Qwen's \s*[\r\n]+ keeps "\n\n" whole.
    EXPECT_EQ(gpt2->encode("a\n\nb"), (Ids{64, 198, 198, 65}));
    EXPECT_EQ(qwen().encode("a\n\nb"), (Ids{64, 271, 65}));
    test::ScratchDir dir2;
    json prefixed = bl;
    prefixed["add_prefix_space"] = true;
    const auto spaced = variant(dir2, test::shared_data("qwen3-tokenizer/tokenizer.json"), {{"pre_tokenizer", prefixed}});
    EXPECT_EQ(spaced->encode("Hello world"), qwen().encode(" Hello world"));
}

// A tiny tokenizer.json exercising merge priority, byte fallback, unk fusion and added-token options.
json tiny_tokenizer() {
    return json::parse(R"({
      "added_tokens": [
        {"id": 9, "content": "<m>", "lstrip": true, "rstrip": true, "single_word": false, "normalized": false, "special": true},
        {"id": 10, "content": "<w>", "lstrip": false, "rstrip": false, "single_word": true, "normalized": false, "special": false}],
      "normalizer": null, "pre_tokenizer": null, "post_processor": null,
      "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
      "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
        "vocab": {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "bc": 5, " ": 6, "<0xE4>": 7, "<0xB8>": 8, "<0xAD>": 11},
        "merges": [["b", "c"], ["a", "b"]]}})");
}

TEST(HfTokenizer, TinyTokenizerMergesFallbackAndAddedTokenOptions) {
    test::ScratchDir dir;
    write_file(dir.file("tokenizer.json"), tiny_tokenizer().dump());
    const auto tok = load_hf_tokenizer_json(dir.file("tokenizer.json"));
    EXPECT_EQ(tok->encode("abc"), (Ids{1, 5}));  // "b c" has the better rank, so "ab" never forms
    EXPECT_EQ(tok->encode("ab"), (Ids{4}));
    EXPECT_EQ(tok->encode("\xE4\xB8\xAD"), (Ids{7, 8, 11}));  // 中 through <0xXX> tokens
    EXPECT_EQ(tok->decode({7, 8, 11}), "\xE4\xB8\xAD");
    EXPECT_EQ(tok->decode({7, 8}), "\xEF\xBF\xBD\xEF\xBF\xBD");  // incomplete bytes: one U+FFFD each
    EXPECT_EQ(tok->encode("axyzb"), (Ids{1, 0, 2}));  // x, y, z have no byte tokens: one fused unk
    EXPECT_EQ(tok->encode("a <m> b"), (Ids{1, 9, 2}));  // lstrip/rstrip swallow the spaces
    EXPECT_EQ(tok->encode("a <w> b"), (Ids{1, 6, 10, 6, 2}));
    EXPECT_EQ(tok->encode("a<w>b"), (Ids{1, 0, 2}));  // single_word: not a match inside a word
    EXPECT_EQ(tok->decode({1, 9, 10, 2}), "a<w>b");
    EXPECT_EQ(tok->decode({1, 9, 10, 2}, false), "a<m><w>b");
}

TEST(HfTokenizer, TinyTokenizerOtherNormalizersAndPreTokenizers) {
    json doc = tiny_tokenizer();
    doc["normalizer"] = {{"type", "Sequence"},
                         {"normalizers", json::array({{{"type", "NFD"}}, {{"type", "StripAccents"}}, {{"type", "Lowercase"}},
                                                      {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}})}};
    doc["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers", json::array({{{"type", "WhitespaceSplit"}},
                                       {{"type", "Split"}, {"pattern", {{"String", "b"}}}, {"behavior", "MergedWithPrevious"}}})}};
    test::ScratchDir dir;
    write_file(dir.file("tokenizer.json"), doc.dump());
    const auto tok = load_hf_tokenizer_json(dir.file("tokenizer.json"));
    EXPECT_EQ(tok->encode(" \tA\xCC\x81" "B \t"), (Ids{4}));  // "A" + combining acute: accent stripped, lowercased
    // Words "abc", "ab", "bc"; each 'b' closes a piece, so "ab|c", "ab", "b|c".
    EXPECT_EQ(tok->encode("abc ab  bc"), (Ids{4, 3, 4, 2, 3}));
}

TEST(HfTokenizer, Errors) {
    test::ScratchDir empty;
    try {
        load_tokenizer(empty.path().string());
        ADD_FAILURE() << "no error for an empty directory";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(empty.path().string()), std::string::npos) << e.what();
    }
    auto expect_error = [](const json& doc_or_null, const std::string& raw, std::vector<std::string> parts) {
        test::ScratchDir dir;
        write_file(dir.file("tokenizer.json"), doc_or_null.is_null() ? raw : doc_or_null.dump());
        try {
            load_tokenizer(dir.path().string());
            ADD_FAILURE() << "no error; expected " << parts.front();
        } catch (const Error& e) {
            parts.push_back(dir.file("tokenizer.json"));
            for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
        }
    };
    expect_error(nullptr, "{ not json", {"not valid JSON"});
    json doc = tiny_tokenizer();
    doc["model"]["type"] = "Unigram";
    expect_error(doc, "", {"model.type", "Unigram"});
    doc = tiny_tokenizer();
    doc["normalizer"] = {{"type", "Sequence"},
                         {"normalizers", json::array({{{"type", "NFC"}}, {{"type", "Precompiled"}}})}};
    expect_error(doc, "", {"normalizer.normalizers[1].type", "Precompiled"});
    doc = tiny_tokenizer();
    doc["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
    expect_error(doc, "", {"pre_tokenizer.type", "BertPreTokenizer"});
    doc = tiny_tokenizer();
    doc["decoder"] = {{"type", "WordPiece"}};
    expect_error(doc, "", {"decoder.type", "WordPiece"});
    doc = tiny_tokenizer();
    doc["model"]["merges"] = json::array({json::array({"a", "q"})});
    expect_error(doc, "", {"model.merges[0]", "'q'"});
    doc = tiny_tokenizer();
    doc["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
    expect_error(doc, "", {"pre_tokenizer", "(unclosed"});
}

}  // namespace
}  // namespace quench
