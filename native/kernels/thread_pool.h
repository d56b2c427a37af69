// A persistent pool of worker threads for the matrix products of the forward pass.
//
// Threads are created once (default: one per core, the caller counting as one) and reused for
// every call; no thread is created per token. A call splits [0, n) into contiguous chunks and
// gives each thread an equal run of consecutive chunks, which it works through front to back:
// its weight rows are one stream, so a kernel's prefetch of the rows after its own is never
// wasted and no chunk starts cold. A thread that has finished its run steals chunks from the back
// of another's, so a thread that loses its core to another process (Home Assistant, Mosquitto on
// the same Pi) simply does fewer chunks and the call slows in proportion to the CPU lost.
// Waiting threads spin for a short while (the next call usually follows within microseconds),
// then sleep on a condition variable, so that an idle or starved pool never holds a core that
// another process needs.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

class ThreadPool {
 public:
  // body(begin, end, thread): handles indices [begin, end); thread is 0 for the caller and
  // 1..threads()-1 for workers (an index for per-thread scratch). Called several times per thread.
  using RangeFn = std::function<void(int64_t begin, int64_t end, int thread)>;

  // threads <= 0: one per core (std::thread::hardware_concurrency).
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs body over [0, n) and returns when every index is done. Chunks are at least minChunk
  // long (except the last). Calls from several threads at once are serialised; a body must not
  // call parallelFor on the same pool (it would wait for itself).
  void parallelFor(int64_t n, const RangeFn& body, int64_t minChunk = 1);

 private:
  void workerLoop(int thread);
  void runChunks(int thread);
  int32_t claimChunk(int share, bool fromFront);
  void finishChunks(int32_t count);

  std::vector<std::thread> workers_;
  std::mutex callMutex_;  // one parallelFor at a time

  // The current job. Written by the caller only while no worker is registered in activeWorkers_
  // and open_ is false; read by a worker only while it is registered and open_ was true.
  const RangeFn* body_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  int32_t chunkCount_ = 0;
  // Thread t's run of chunks [front, back) in one word (front << 32 | back): the owner takes
  // from the front, a thread with nothing left of its own steals from the back.
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  std::unique_ptr<Share[]> shares_;
  std::atomic<int32_t> doneChunks_{0};
  std::atomic<bool> open_{false};
  std::atomic<int32_t> activeWorkers_{0};

  std::atomic<uint32_t> generation_{0};  // bumped per call: wakes the workers
  std::atomic<bool> stopping_{false};
  std::atomic<int32_t> sleepingWorkers_{0};
  std::atomic<bool> callerSleeping_{false};
  std::mutex sleepMutex_;
  std::condition_variable workerWake_;
  std::condition_variable callerWake_;
};
