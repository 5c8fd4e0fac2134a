// The kernels' persistent worker pool: every chunk runs exactly once per call across many calls, a chunk's
// exception reaches the caller and leaves the pool usable, a call from inside a chunk and calls from two
// threads at once complete (run serially rather than deadlock), and threaded GEMVs equal 1-thread ones.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "quench_kernels/dense.h"
#include "quench_kernels/packed_detail.h"

using quench::kernels::detail::parallel_rows;
using quench::kernels::detail::run_chunks;

TEST(WorkerPool, EveryChunkRunsOncePerCall) {
    for (int n : {2, 3, 5, 2, 8}) {
        for (int call = 0; call < 200; ++call) {
            std::vector<std::atomic<int>> hits(n);
            run_chunks(n, [&](int i) { hits[i].fetch_add(1); });
            for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " call " << call << " chunk " << i;
        }
    }
}

TEST(WorkerPool, AlternatingChunkCountsRunEachChunkOnce) {
    // Calls of 2, 3 and 4 chunks interleaved: a worker not needed by one call (index >= its chunk count) may
    // be descheduled mid-wake; it must never run a later call's chunk twice, nor a finished call's chunk
    // (whose body and counters are gone: each call's counters live on this frame only).
    for (int call = 0; call < 20000; ++call) {
        const int n = 2 + call % 3;
        std::vector<std::atomic<int>> hits(n);
        run_chunks(n, [&](int i) { hits[i].fetch_add(1); });
        for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " call " << call << " chunk " << i;
    }
}

TEST(WorkerPool, RowsAreCoveredExactlyOnce) {
    for (int64_t rows : {1, 2, 7, 4096, 4097}) {
        std::vector<std::atomic<int>> seen(rows);
        parallel_rows(rows, 3, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) seen[r].fetch_add(1);
        });
        for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(seen[r].load(), 1) << rows << " rows, row " << r;
    }
}

TEST(WorkerPool, ExceptionsReachTheCallerAndThePoolGoesOn) {
    for (int failing : {0, 1}) {
        EXPECT_THROW(run_chunks(2, [&](int i) {
                         if (i == failing) throw std::runtime_error("chunk failed");
                     }),
                     std::runtime_error);
    }
    std::atomic<int> sum{0};
    run_chunks(4, [&](int i) { sum += i + 1; });
    EXPECT_EQ(sum.load(), 10);
}

TEST(WorkerPool, NestedAndConcurrentCallsComplete) {
    std::atomic<int> inner{0};
    run_chunks(2, [&](int) { run_chunks(3, [&](int) { ++inner; }); });
    EXPECT_EQ(inner.load(), 6);

    std::atomic<int> total{0};
    auto caller = [&] {
        for (int k = 0; k < 300; ++k) run_chunks(2, [&](int) { ++total; });
    };
    std::thread a(caller), b(caller);
    a.join();
    b.join();
    EXPECT_EQ(total.load(), 2 * 300 * 2);
}

TEST(WorkerPool, ThreadedGemvEqualsOneThread) {
    const int64_t rows = 301, cols = 67;
    std::vector<float> W(rows * cols), x(2 * cols), y1(2 * rows), y3(2 * rows);
    for (std::size_t i = 0; i < W.size(); ++i) W[i] = static_cast<float>((i * 37 % 101) - 50) / 50.0f;
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 13 % 17) - 8) / 8.0f;
    quench::kernels::gemv_f32(W.data(), x.data(), y1.data(), rows, cols, 2, 1);
    quench::kernels::gemv_f32(W.data(), x.data(), y3.data(), rows, cols, 2, 3);
    EXPECT_EQ(y1, y3);  // rows are independent: the same sums bit for bit
}
