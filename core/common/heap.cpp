#include "common/heap.h"

#include <malloc.h>

namespace quench {

void use_bounded_heap() {
#ifdef M_MMAP_THRESHOLD
    // Setting the threshold also turns off glibc's dynamic adjustment of it (mallopt(3)).
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

}  // namespace quench
