#include "mapping_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace mapping_guard {
namespace {

// Lock-free, fixed-size table: the signal handler may only read atomics.
struct Watched {
  std::atomic<bool> claimed{false};
  std::atomic<uintptr_t> base{0};
  std::atomic<size_t> size{0};
  std::atomic<bool> damaged{false};
};
constexpr int kSlots = 64;
Watched slots[kSlots];

std::once_flag installed;
struct sigaction previous {};
uintptr_t pageMask = ~static_cast<uintptr_t>(4095);

void onSigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (Watched& w : slots) {
    const uintptr_t base = w.base.load(std::memory_order_acquire);
    if (base == 0 || addr < base || addr - base >= w.size.load(std::memory_order_acquire)) continue;
    // The page is gone from the file: zeros in its place, readable like the rest of the mapping.
    void* page = reinterpret_cast<void*>(addr & pageMask);
    if (mmap(page, ~pageMask + 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) break;
    w.damaged.store(true, std::memory_order_release);
    return;  // the faulting read runs again and finds the zero page
  }
  // Not ours: whatever SIGBUS meant before.
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) return previous.sa_sigaction(sig, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    return previous.sa_handler(sig);
  }
  signal(SIGBUS, SIG_DFL);  // returning re-runs the access, which now ends the process as it would have
}

void install() {
  pageMask = ~static_cast<uintptr_t>(sysconf(_SC_PAGESIZE) - 1);
  struct sigaction action {};
  action.sa_sigaction = onSigbus;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, &previous);
}

}  // namespace

void watch(const void* base, size_t size) {
  std::call_once(installed, install);
  for (Watched& w : slots) {
    bool expected = false;
    if (!w.claimed.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) continue;
    w.size.store(size, std::memory_order_release);
    w.damaged.store(false, std::memory_order_release);
    w.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);  // last: the handler sees it now
    return;
  }
}

void unwatch(const void* base) {
  for (Watched& w : slots) {
    uintptr_t expected = reinterpret_cast<uintptr_t>(base);
    if (!w.base.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) continue;
    w.claimed.store(false, std::memory_order_release);
    return;
  }
}

bool damaged(const void* base) {
  for (const Watched& w : slots)
    if (w.base.load(std::memory_order_acquire) == reinterpret_cast<uintptr_t>(base)) return w.damaged.load(std::memory_order_acquire);
  return false;
}

}  // namespace mapping_guard
