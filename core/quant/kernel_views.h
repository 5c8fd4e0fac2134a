#pragma once
// The one place a stored QuantizedTensor becomes the view a packed kernel reads (kernels/include/quench_kernels):
// the codec spec picks the kernel family and fills the view's scalars (bits, group, D / d, Hadamard blocks,
// k, block), and each part is checked (present, CPU, contiguous, dtype, number of values) before its data
// pointer goes into the view. Anything that does not fit throws quench::Error naming the codec spec and the
// part; the kernel's own validate() runs last, and its complaints are rethrown the same way.
//
// Lifetime: a view holds raw pointers into q's part tensors (and no side buffers: every field is either a
// scalar or a part in the dtype the kernel reads; the kernels widen fp16 codebooks to fp32 themselves and
// derive QAM-W's column signs from the stored seed). The QuantizedTensor must outlive the view, and its
// parts must not be replaced or resized while the view is in use.
//
// This header includes the kernel headers: code that includes it links quench_kernels (quench_core links it
// privately), as tests/ does.
#include <cstdint>
#include <variant>

#include "quant/codec_registry.h"
#include "quant/quantized_tensor.h"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_lattice.h"
#include "quench_kernels/packed_liftquant.h"
#include "quench_kernels/packed_qamw.h"

namespace quench {

// Which kernel reads tensors stored with this spec: its codec row's kernel (KernelFamily, kernel_family_name
// in quant/codec_registry.h). quench::Error when the spec names no registered codec.
KernelFamily kernel_family(const CodecSpec& spec);

// One function per family; each throws quench::Error when q's spec belongs to another family or a part
// does not fit (the message names the spec and the part).
kernels::GridView grid_view(const QuantizedTensor& q);
kernels::LiftView lift_view(const QuantizedTensor& q);
kernels::LatticeView lattice_view(const QuantizedTensor& q);
kernels::QamwView qamw_view(const QuantizedTensor& q);

using KernelView = std::variant<kernels::GridView, kernels::LiftView, kernels::LatticeView, kernels::QamwView>;

// The view of q's family (kernel_family(q.spec)); quench::Error for KernelFamily::None and as above.
KernelView kernel_view(const QuantizedTensor& q);

// The CPU GEMV of the view's family: y [batch, rows] = x [batch, cols] W^T, batch 1..8.
void kernel_gemv(const KernelView& v, const float* x, float* y, int64_t batch, const kernels::CpuOptions& options = {});

}  // namespace quench
