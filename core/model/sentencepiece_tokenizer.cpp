#include "model/sentencepiece_tokenizer.h"

#include "common/error.h"
#include "model/sentencepiece_backend.h"
#include "model/utf8.h"

namespace quench {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : path_(model_path), sp_(make_sentencepiece_backend()) {
    const std::string status = sp_->load(model_path);
    if (!status.empty()) throw Error(model_path + ": cannot load SentencePiece model: " + status);
    bos_id_ = sp_->bos_id();  // -1 when the model defines none
    eos_id_ = sp_->eos_id();
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(const std::string& text, bool add_special) const {
    utf8::validate(text);  // SentencePiece would silently replace bad bytes
    std::vector<int> pieces;
    const std::string status = sp_->encode(text, &pieces);
    if (!status.empty()) throw Error(path_ + ": encoding failed: " + status);
    std::vector<int32_t> ids;
    ids.reserve(pieces.size() + 2);
    if (add_special && add_bos_ && bos_id_ >= 0) ids.push_back(bos_id_);
    ids.insert(ids.end(), pieces.begin(), pieces.end());
    if (add_special && add_eos_ && eos_id_ >= 0) ids.push_back(eos_id_);
    return ids;
}

bool SentencePieceTokenizer::is_special(int32_t id) const { return sp_->is_control(id) || sp_->is_unknown(id); }

void SentencePieceTokenizer::check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size())
        throw Error("token id " + std::to_string(id) + " is out of range (vocabulary size " +
                    std::to_string(vocab_size()) + ")");
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    // Runs of ordinary ids go through SentencePiece's own decoder (it handles '▁', byte pieces and the
    // dummy prefix); special ids are dropped or, when kept, written verbatim between the runs.
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
        if (run.empty()) return;
        std::string text;
        const std::string status = sp_->decode(run, &text);
        if (!status.empty()) throw Error(path_ + ": decoding failed: " + status);
        out += text;
        run.clear();
    };
    for (int32_t id : ids) {
        check_id(id);
        if (!is_special(id)) {
            run.push_back(id);
        } else if (!skip_special) {
            flush();
            out += sp_->id_to_piece(id);
        }
    }
    flush();
    return out;
}

int32_t SentencePieceTokenizer::vocab_size() const { return sp_->piece_size(); }

std::string SentencePieceTokenizer::token(int32_t id) const {
    check_id(id);
    return sp_->id_to_piece(id);
}

int32_t SentencePieceTokenizer::token_to_id(const std::string& piece) const {
    const int id = sp_->piece_to_id(piece);  // returns the unk id for unknown pieces
    return id >= 0 && sp_->id_to_piece(id) == piece ? id : -1;
}

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& model_path) {
    return std::make_unique<SentencePieceTokenizer>(model_path);
}

}  // namespace quench
