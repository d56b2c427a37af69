#include "thread_pool.h"

#include <algorithm>
#include <chrono>

namespace {

// Long enough to cover the gap between two matrix products of one token, short enough that a
// starved or idle pool gives its cores back almost at once.
constexpr auto kSpinTime = std::chrono::microseconds(100);

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

// Spins until ready() or kSpinTime has passed; true when ready() held.
template <typename Ready>
bool spinUntil(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      cpuRelax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  shares_.reset(new Share[threads]);
  workers_.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { workerLoop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(sleepMutex_);
    stopping_.store(true);
    generation_.fetch_add(1);
  }
  workerWake_.notify_all();
  for (std::thread& w : workers_) w.join();
}

int32_t ThreadPool::claimChunk(int share, bool fromFront) {
  std::atomic<uint64_t>& range = shares_[share].range;
  uint64_t r = range.load(std::memory_order_relaxed);
  for (;;) {
    const auto front = static_cast<uint32_t>(r >> 32), back = static_cast<uint32_t>(r);
    if (front >= back) return -1;
    const uint64_t taken = fromFront ? r + (uint64_t{1} << 32) : r - 1;
    if (range.compare_exchange_weak(r, taken, std::memory_order_relaxed)) {
      return static_cast<int32_t>(fromFront ? front : back - 1);
    }
  }
}

void ThreadPool::runChunks(int thread) {
  const int t = threads();
  int32_t finished = 0;
  for (;;) {
    int32_t c = claimChunk(thread, true);
    for (int k = 1; c < 0 && k < t; ++k) c = claimChunk((thread + k) % t, false);
    if (c < 0) break;
    const int64_t begin = c * chunk_;
    (*body_)(begin, std::min(n_, begin + chunk_), thread);
    ++finished;
  }
  if (finished) finishChunks(finished);
}

void ThreadPool::finishChunks(int32_t count) {
  // seq_cst pairs with the caller's store of callerSleeping_ before it re-checks doneChunks_.
  if (doneChunks_.fetch_add(count) + count == chunkCount_ && callerSleeping_.load()) {
    { std::lock_guard<std::mutex> lock(sleepMutex_); }
    callerWake_.notify_one();
  }
}

void ThreadPool::workerLoop(int thread) {
  uint32_t seen = 0;
  for (;;) {
    if (!spinUntil([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock<std::mutex> lock(sleepMutex_);
      sleepingWorkers_.fetch_add(1);
      workerWake_.wait(lock, [&] { return generation_.load() != seen; });
      sleepingWorkers_.fetch_sub(1);
    }
    if (stopping_.load()) return;
    // Register before looking at the job, so the caller cannot replace it under us; a worker
    // that arrives after the job closed backs off without touching it.
    activeWorkers_.fetch_add(1);
    const uint32_t generation = generation_.load();
    if (open_.load()) runChunks(thread);
    activeWorkers_.fetch_sub(1);
    seen = generation;
  }
}

void ThreadPool::parallelFor(int64_t n, const RangeFn& body, int64_t minChunk) {
  if (n <= 0) return;
  const int t = threads();
  // Several chunks per thread, so that a thread slowed by a competing process hands its share
  // to the others; never so small that claiming a chunk costs more than doing it.
  const int64_t chunk = std::max<int64_t>({minChunk, 1, (n + 8 * t - 1) / (8 * t)});
  if (t == 1 || chunk >= n) {
    body(0, n, 0);
    return;
  }
  std::lock_guard<std::mutex> call(callMutex_);
  // No worker is registered (the previous call waited for that), so the job can be rewritten.
  body_ = &body;
  n_ = n;
  chunk_ = chunk;
  chunkCount_ = static_cast<int32_t>((n + chunk - 1) / chunk);
  for (int s = 0; s < t; ++s) {
    const uint64_t front = static_cast<uint64_t>(chunkCount_) * s / t, back = static_cast<uint64_t>(chunkCount_) * (s + 1) / t;
    shares_[s].range.store(front << 32 | back, std::memory_order_relaxed);  // published by open_ and generation_ below
  }
  doneChunks_.store(0, std::memory_order_relaxed);
  open_.store(true);
  generation_.fetch_add(1);
  if (sleepingWorkers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(sleepMutex_); }
    workerWake_.notify_all();
  }

  runChunks(0);

  if (!spinUntil([&] { return doneChunks_.load(std::memory_order_acquire) == chunkCount_; })) {
    std::unique_lock<std::mutex> lock(sleepMutex_);
    callerSleeping_.store(true);
    callerWake_.wait(lock, [&] { return doneChunks_.load() == chunkCount_; });
    callerSleeping_.store(false);
  }
  // Close the job, then wait out workers that registered before the close; they find no chunk
  // left and leave within a few instructions.
  open_.store(false);
  if (!spinUntil([&] { return activeWorkers_.load() == 0; })) {
    while (activeWorkers_.load() != 0) std::this_thread::yield();  // it was preempted: let it run
  }
}
