#include "model/safetensors.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"

namespace quench {

using nlohmann::json;

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << ']';
    return os.str();
}

std::string range_str(uint64_t begin, uint64_t end) {
    return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// Parses one tensor entry of the header. `data_size` is the length of the data section.
TensorInfo parse_entry(const std::string& path, const std::string& name, const json& v, uint64_t data_size) {
    const std::string where = path + ": tensor '" + name + "': ";
    if (!v.is_object()) throw Error(where + "entry is not a JSON object");
    TensorInfo t;
    t.name = name;

    const auto dt = v.find("dtype");
    if (dt == v.end()) throw Error(where + "missing dtype");
    if (!dt->is_string()) throw Error(where + "dtype is not a string");
    const auto parsed = dtype_from_name(dt->get<std::string>());
    if (!parsed) throw Error(where + "unsupported dtype '" + dt->get<std::string>() + "'");
    t.dtype = *parsed;

    const auto sh = v.find("shape");
    if (sh == v.end()) throw Error(where + "missing shape");
    if (!sh->is_array()) throw Error(where + "shape is not an array");
    for (const json& d : *sh) {
        if (!d.is_number_integer()) throw Error(where + "shape has a non-integer dimension " + d.dump());
        // nlohmann stores non-negative literals as unsigned, so a signed value here is negative.
        if (!d.is_number_unsigned()) throw Error(where + "shape has a negative dimension " + d.dump());
        if (d.get<uint64_t>() > uint64_t(INT64_MAX)) throw Error(where + "shape dimension " + d.dump() + " is too large");
        t.shape.push_back(d.get<int64_t>());
    }

    const auto off = v.find("data_offsets");
    if (off == v.end()) throw Error(where + "missing data_offsets");
    if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
        throw Error(where + "data_offsets must be two non-negative integers, got " + off->dump());
    t.begin = (*off)[0].get<uint64_t>();
    t.end = (*off)[1].get<uint64_t>();
    if (t.begin > t.end) throw Error(where + "data_offsets " + range_str(t.begin, t.end) + " has begin after end");
    if (t.end > data_size)
        throw Error(where + "data_offsets " + range_str(t.begin, t.end) + " exceed the data section (" +
                    std::to_string(data_size) + " bytes)");

    // numel * element size, checked for overflow: a lying shape must not wrap around to the right size.
    uint64_t need = dtype_size(t.dtype);
    bool overflow = false;
    for (int64_t d : t.shape) overflow |= __builtin_mul_overflow(need, uint64_t(d), &need);
    if (overflow || need != t.nbytes())
        throw Error(where + "shape " + shape_str(t.shape) + " with dtype " + dtype_name(t.dtype) + " needs " +
                    (overflow ? std::string("more than 2^64") : std::to_string(need)) + " bytes but data_offsets " +
                    range_str(t.begin, t.end) + " span " + std::to_string(t.nbytes()));
    return t;
}

}  // namespace

int64_t TensorInfo::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
    const uint64_t size = file_->size();
    if (size == 0) throw Error(path + ": file is empty");
    if (size < 8)
        throw Error(path + ": file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file_->data()[i];  // little-endian
    if (header_len > size - 8)
        throw Error(path + ": header length " + std::to_string(header_len) + " exceeds file size (" +
                    std::to_string(size) + " bytes)");
    data_start_ = 8 + header_len;
    const uint64_t data_size = size - data_start_;

    // nlohmann keeps the last of duplicate keys silently; a header naming one tensor twice is corrupt,
    // so collect the top-level keys while parsing.
    std::set<std::string> seen;
    std::string duplicate;
    const auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
        if (depth == 1 && event == json::parse_event_t::key && !seen.insert(parsed.get<std::string>()).second &&
            duplicate.empty())
            duplicate = parsed.get<std::string>();
        return true;
    };
    json header;
    const char* text = reinterpret_cast<const char*>(file_->data() + 8);
    try {
        header = json::parse(text, text + header_len, on_event);
    } catch (const json::exception& e) {
        throw Error(path + ": header is not valid JSON: " + e.what());
    }
    if (!header.is_object()) throw Error(path + ": header is not a JSON object (got " + header.type_name() + ")");
    if (!duplicate.empty()) throw Error(path + ": tensor '" + duplicate + "' appears twice in the header");

    for (const auto& [key, value] : header.items()) {
        if (key == "__metadata__") {
            if (!value.is_object()) throw Error(path + ": __metadata__ is not a JSON object");
            for (const auto& [mk, mv] : value.items()) {
                if (!mv.is_string()) throw Error(path + ": __metadata__ entry '" + mk + "' is not a string");
                metadata_[mk] = mv.get<std::string>();
            }
            continue;
        }
        tensors_.push_back(parse_entry(path, key, value, data_size));
    }

    std::stable_sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    // Two tensors sharing bytes would alias each other's data. Empty tensors occupy no bytes and are skipped.
    const TensorInfo* last = nullptr;
    for (const TensorInfo& t : tensors_) {
        if (t.begin == t.end) continue;
        if (last && t.begin < last->end)
            throw Error(path + ": tensor '" + t.name + "': data_offsets " + range_str(t.begin, t.end) +
                        " overlap tensor '" + last->name + "' at " + range_str(last->begin, last->end));
        last = &t;  // sorted and non-overlapping so far, so this one reaches furthest
    }
    for (std::size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace quench
