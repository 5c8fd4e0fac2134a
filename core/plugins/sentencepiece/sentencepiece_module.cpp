// libquench_sentencepiece.so: the only code that links libsentencepiece (see model/sentencepiece_backend.h).
#include <sentencepiece_processor.h>

#include "model/sentencepiece_backend.h"

namespace {

class Backend final : public quench::SentencePieceBackend {
public:
    std::string load(const std::string& path) override { return message(sp_.Load(path)); }
    std::string encode(const std::string& text, std::vector<int>* ids) const override { return message(sp_.Encode(text, ids)); }
    std::string decode(const std::vector<int>& ids, std::string* text) const override { return message(sp_.Decode(ids, text)); }
    int piece_size() const override { return sp_.GetPieceSize(); }
    int bos_id() const override { return sp_.bos_id(); }
    int eos_id() const override { return sp_.eos_id(); }
    bool is_control(int id) const override { return sp_.IsControl(id); }
    bool is_unknown(int id) const override { return sp_.IsUnknown(id); }
    std::string id_to_piece(int id) const override { return sp_.IdToPiece(id); }
    int piece_to_id(const std::string& piece) const override { return sp_.PieceToId(piece); }

private:
    static std::string message(const sentencepiece::util::Status& s) { return s.ok() ? std::string() : s.ToString(); }
    sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) quench::SentencePieceBackend* quench_sentencepiece_create() {
    return new Backend();
}
