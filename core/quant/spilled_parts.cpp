#include "quant/spilled_parts.h"

#include <sys/mman.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "model/mapped_file.h"

namespace quench {

PartSpill::PartSpill(const std::string& dir) : file_("quench-codes", dir) {}

QuantizedTensor PartSpill::spill(const QuantizedTensor& q) {
    QuantizedTensor out = q;
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    for (QuantPart& part : out.parts) {
        const at::Tensor data = part.data.contiguous();
        const std::size_t n = data.nbytes();
        if (part.shared || n < kMinBytes || !data.device().is_cpu()) continue;
        const std::size_t offset = (bytes_ + page - 1) / page * page;  // mmap offsets are page aligned
        file_.write_at(offset, data.data_ptr(), n, "quantized codes");
        void* map = ::mmap(nullptr, n, PROT_READ, MAP_SHARED, file_.fd(), static_cast<off_t>(offset));
        if (map == MAP_FAILED) throw Error(file_.path() + ": cannot map quantized codes: " + std::strerror(errno));
        register_mapping(map, n);  // so forget() may drop its pages
        // Read-only memory: the view must never be written (torch's in-place ops would fault), and no codec
        // writes to its parts. The deleter unmaps it with the last reference.
        part.data = at::from_blob(
            map, data.sizes(),
            [n](void* p) {
                unregister_mapping(p);
                ::munmap(p, n);
            },
            data.options());
        forget_pages(map, n);
        bytes_ = offset + n;
    }
    return out;
}

void forget(const QuantizedTensor& q) {
    for (const QuantPart& part : q.parts)
        if (part.data.defined() && part.data.is_contiguous()) forget_mapped(part.data.data_ptr(), part.data.nbytes());
}

}  // namespace quench
