#include "quant/spilled_parts.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "model/mapped_file.h"

namespace quench {
namespace {

std::string sys_error(const std::string& path, const std::string& what, int err) {
    return path + ": " + what + ": " + std::strerror(err);
}

}  // namespace

PartSpill::PartSpill(const std::string& dir) {
    std::string d = dir;
    if (d.empty()) {
        const char* env = std::getenv("TMPDIR");
        d = env && *env ? env : "/tmp";
    }
    std::string templ = d + "/quench-codes-XXXXXX";
    fd_ = ::mkstemp(templ.data());
    if (fd_ < 0) throw Error(sys_error(templ, "cannot create a temporary file for quantized codes", errno));
    path_ = templ;
    ::unlink(templ.c_str());  // nameless from now on: nothing is left behind, whatever happens
}

PartSpill::~PartSpill() {
    if (fd_ >= 0) ::close(fd_);  // the views' mappings keep the file's data while they live
}

QuantizedTensor PartSpill::spill(const QuantizedTensor& q) {
    QuantizedTensor out = q;
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    for (QuantPart& part : out.parts) {
        const at::Tensor data = part.data.contiguous();
        const std::size_t n = data.nbytes();
        if (part.shared || n < kMinBytes || !data.device().is_cpu()) continue;
        const std::size_t offset = (bytes_ + page - 1) / page * page;  // mmap offsets are page aligned
        const auto* src = static_cast<const uint8_t*>(data.data_ptr());
        for (std::size_t done = 0; done < n;) {
            const ssize_t w = ::pwrite(fd_, src + done, n - done, static_cast<off_t>(offset + done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) throw Error(sys_error(path_, "cannot write quantized codes", w < 0 ? errno : ENOSPC));
            done += static_cast<std::size_t>(w);
        }
        void* map = ::mmap(nullptr, n, PROT_READ, MAP_SHARED, fd_, static_cast<off_t>(offset));
        if (map == MAP_FAILED) throw Error(sys_error(path_, "cannot map quantized codes", errno));
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
