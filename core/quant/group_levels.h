#pragma once
// The values one group of a quantized weight can take, for drawing them over the weights' histogram: every
// level of a scalar-grid codec (scale * (code - zero) with that group's scale and zero), or, for codecs
// without a per-group grid (vector and lifted codecs), the distinct values the row dequantizes to.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "quant/quantized_tensor.h"

namespace quench {

struct GroupLevels {
    std::vector<double> values;  // ascending, distinct; thinned evenly by rank to max_levels
    bool grid = false;           // every level of a scalar grid; false: distinct dequantized values of the row
    std::size_t distinct = 0;    // values before thinning
};

// Columns per group of q: its codec's groups for scalar-grid codecs, the whole row otherwise. The last
// group of a row may be shorter.
int64_t group_columns(const QuantizedTensor& q);
// Groups per row of q: ceil(cols / group_columns).
int64_t groups_per_row(const QuantizedTensor& q);

// Group `group` (0-based, within the row) of row `row`. quench::Error for a row or group out of range.
GroupLevels group_levels(const QuantizedTensor& q, int64_t row, int64_t group, std::size_t max_levels);

}  // namespace quench
