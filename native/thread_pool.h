// Placeholder pool: runs the work on the calling thread. Replaced by the persistent pool.
#pragma once
#include <cstdint>
#include <functional>

class ThreadPool {
 public:
  explicit ThreadPool(int threads = 1) : threads_(threads < 1 ? 1 : threads) {}
  int size() const { return threads_; }
  void parallelFor(int64_t n, const std::function<void(int64_t begin, int64_t end, int thread)>& fn) {
    if (n > 0) fn(0, n, 0);
  }

 private:
  int threads_;
};
