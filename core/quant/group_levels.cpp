#include "quant/group_levels.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"
#include "quant/bitpack.h"
#include "quant/codec.h"
#include "quant/scalar_grid.h"

namespace quench {

int64_t group_columns(const QuantizedTensor& q) {
    const auto codec = make_codec(q.spec);
    if (const auto* grid = dynamic_cast<const GroupedGridCodec*>(codec.get())) return grid->group_columns(q.rows, q.cols);
    return q.cols;
}

int64_t groups_per_row(const QuantizedTensor& q) { return group_count(q.cols, group_columns(q)); }

GroupLevels group_levels(const QuantizedTensor& q, int64_t row, int64_t group, std::size_t max_levels) {
    const auto codec = make_codec(q.spec);
    const auto* gridded = dynamic_cast<const GroupedGridCodec*>(codec.get());
    const int64_t groups = gridded ? group_count(q.cols, gridded->group_columns(q.rows, q.cols)) : 1;
    if (row < 0 || row >= q.rows || group < 0 || group >= groups)
        throw Error(q.spec.to_string() + ": row " + std::to_string(row) + ", group " + std::to_string(group) +
                    " outside [" + std::to_string(q.rows) + " rows, " + std::to_string(groups) + " groups per row]");
    GroupLevels out;
    if (gridded) {
        // decode() of the whole code range with this group's scale (and zero code).
        const ScalarGrid& grid = gridded->grid();
        const int64_t index = row * groups + group;
        const at::Tensor scales = q.part("scales").data.to(at::kFloat).reshape({-1});
        GridParams p{scales.narrow(0, index, 1).view({1, 1}), {}};
        if (const int zb = grid.zero_bits())
            p.zero = unpack_bits(q.part("zeros").data, zb, q.rows * groups).to(at::kFloat).narrow(0, index, 1).view({1, 1});
        const at::Tensor levels =
            grid.decode(at::arange(grid.num_codes(), at::kLong).view({1, -1}), p).to(at::kDouble).contiguous();
        out.values.assign(levels.data_ptr<double>(), levels.data_ptr<double>() + levels.numel());
        out.grid = true;
    } else {
        const at::Tensor w = codec->dequantize(q)[row].to(at::kDouble).contiguous();
        out.values.assign(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
    }
    std::sort(out.values.begin(), out.values.end());
    out.values.erase(std::unique(out.values.begin(), out.values.end()), out.values.end());
    out.distinct = out.values.size();
    if (max_levels >= 2 && out.values.size() > max_levels) {  // evenly by rank: the spread stays visible
        std::vector<double> thinned;
        const double step = double(out.values.size() - 1) / double(max_levels - 1);
        for (std::size_t i = 0; i < max_levels; ++i) thinned.push_back(out.values[std::size_t(std::lround(double(i) * step))]);
        out.values = std::move(thinned);
    }
    return out;
}

}  // namespace quench
