// The kernels' threads: started once and kept, because a GEMV on a 4096 x 4096 layer takes 200-400 us with
// the int8 path and starting a std::thread costs tens of microseconds, which is what a fresh thread per
// call used to spend on each call. Idle workers spin briefly (back-to-back calls, as in decoding, find them
// awake) and then sleep on a condition variable, so an idle process burns no CPU.
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "quench_kernels/packed_detail.h"

namespace quench::kernels::detail {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
}

class WorkerPool {
public:
    ~WorkerPool() {
        {
            std::lock_guard<std::mutex> lk(wake_mu_);
            stop_ = true;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    // body(i) for i in [0, n): i = 0 on the caller, the others on workers. A second caller while a job
    // runs (another thread's kernel, or a kernel called from inside a body) runs its chunks itself: slower,
    // never a deadlock.
    void run(int n, const std::function<void(int)>& body) {
        std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
        // In a forked child the workers do not exist (only the forking thread is copied).
        if (!busy.owns_lock() || getpid() != pid_) {
            for (int i = 0; i < n; ++i) body(i);
            return;
        }
        while (static_cast<int>(workers_.size()) < n - 1) {
            const int index = static_cast<int>(workers_.size()) + 1;
            // It starts from the current generation, so it waits for the job below, not an earlier one.
            workers_.emplace_back([this, index, g = generation_.load()] { work(index, g); });
        }
        {
            // The job and its generation change together under the lock, and a worker reads them together
            // under it (take): a worker never pairs one job's generation with another job's body.
            std::lock_guard<std::mutex> lk(wake_mu_);
            body_ = &body;
            tasks_ = n;
            error_ = nullptr;
            pending_.store(n - 1, std::memory_order_relaxed);
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        std::exception_ptr mine;
        try {
            body(0);
        } catch (...) {
            mine = std::current_exception();
        }
        // Spin while the workers are likely running; then yield, so that on a busy machine a worker still
        // waiting for a core gets this one.
        for (int spin = 0; pending_.load(std::memory_order_acquire) > 0; ++spin) {
            if (spin < kSpins) cpu_relax();
            else std::this_thread::yield();
        }
        {
            std::lock_guard<std::mutex> lk(wake_mu_);
            body_ = nullptr;
            tasks_ = 0;
        }
        if (mine) std::rethrow_exception(mine);
        if (error_) std::rethrow_exception(error_);
    }

private:
    void work(int index, uint64_t seen) {
        for (;;) {
            uint64_t g = generation_.load(std::memory_order_acquire);
            for (int spin = 0; g == seen && spin < kSpins; ++spin) {
                cpu_relax();
                g = generation_.load(std::memory_order_acquire);
            }
            // The current job, read with its generation. A job that counts this worker (index < tasks) cannot
            // finish, nor be replaced, before this worker has run its chunk; one that does not is skipped.
            const std::function<void(int)>* body = nullptr;
            int tasks = 0;
            {
                std::unique_lock<std::mutex> lk(wake_mu_);
                if (g == seen) wake_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                seen = generation_.load(std::memory_order_acquire);
                if (stop_) return;
                body = body_, tasks = tasks_;
            }
            if (index < tasks) {
                try {
                    (*body)(index);
                } catch (...) {
                    std::lock_guard<std::mutex> lk(error_mu_);
                    if (!error_) error_ = std::current_exception();
                }
                pending_.fetch_sub(1, std::memory_order_acq_rel);
            }
        }
    }

    static constexpr int kSpins = 2048;  // about 20-50 us of pause before sleeping (or yielding)
    std::mutex run_mu_, wake_mu_, error_mu_;
    std::condition_variable wake_;
    std::vector<std::thread> workers_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    const std::function<void(int)>* body_ = nullptr;
    int tasks_ = 0;
    bool stop_ = false;
    const pid_t pid_ = getpid();
    std::exception_ptr error_;
};

}  // namespace

void run_chunks(int n, const std::function<void(int)>& body) {
    if (n <= 1) {
        if (n == 1) body(0);
        return;
    }
    static WorkerPool pool;
    pool.run(n, body);
}

}  // namespace quench::kernels::detail
