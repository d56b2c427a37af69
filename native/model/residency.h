// Residency of the mapped weights: which layers stay in RAM (mlock'd) and which stream from
// storage on every forward pass, read ahead while earlier layers compute and released after use.
//
// Why: a decode step reads every weight once, in the same order. When the file is a little
// larger than the memory we may use, the kernel's LRU evicts exactly the pages needed next and
// every token re-reads the whole file. Locking all layers that fit and streaming only the rest
// (in a fixed order, with the kernel told when we are done with them) reads just the shortfall.
// The weights stay mapped; nothing is copied.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model.h"

struct ResidencyOptions {
  int streamLayers = 0;  // layers read from storage on every pass, spread evenly over the stack
  bool lock = true;      // mlock the other layers and the output matrix
};

struct ResidencyReport {
  int nLayer = 0;
  int lockedLayers = 0;             // layers mlock'd (0 when locking failed or was not asked)
  std::vector<int> streamedLayers;  // layer indices, ascending
  uint64_t layerBytes = 0;          // bytes of all layers' tensors
  uint64_t lockedBytes = 0;         // bytes mlock'd (layers + output matrix + norms)
  uint64_t streamedBytes = 0;       // bytes read from storage per forward pass (the streamed layers)
  uint64_t residentBytes = 0;       // weight bytes kept in RAM (locked or not) apart from the stream window
  uint64_t windowBytes = 0;         // most streamed bytes in RAM at once (the layer computing + the one read ahead)
  bool lockRequested = false;
  bool lockingPermitted = false;    // every mlock succeeded
  std::string lockError;            // why locking was not permitted ("" when it was or was not asked)
  uint64_t passes = 0;              // forward passes that streamed their layers
};

// A page-aligned byte range of the mapping.
struct MappedRange {
  const uint8_t* begin = nullptr;
  const uint8_t* end = nullptr;
  size_t size() const { return static_cast<size_t>(end - begin); }
};

class ResidencyManager {
 public:
  // Locks the resident layers now (this reads them from storage) and starts the read-ahead
  // thread. Throws std::invalid_argument when streamLayers is out of range.
  ResidencyManager(const Model& model, const ResidencyOptions& options);
  ~ResidencyManager();
  ResidencyManager(const ResidencyManager&) = delete;
  ResidencyManager& operator=(const ResidencyManager&) = delete;

  // Called by the forward pass after each layer, on the thread that runs it: a streamed layer is
  // released and the next one read ahead. (One not read ahead yet faults in as it is used:
  // slower, never wrong.)
  void afterLayer(int layer);

  ResidencyReport report() const;

 private:
  void lockResident();
  void readRowsOnly(const Model& model);
  void release(int layer);
  int nextStreamed(int layer) const;
  void queueReadAhead(int layer);
  void readerLoop();
  void readLayer(int layer);

  const Model& model_;
  int fd_ = -1;                                   // for posix_fadvise on the file's page cache
  size_t pageSize_ = 4096;
  std::vector<std::vector<MappedRange>> layerRanges_;    // [nLayer][ranges] to read or lock, rounded outward to pages
  std::vector<std::vector<MappedRange>> releaseRanges_;  // [nLayer][ranges] to drop: whole pages of this layer only
  std::vector<MappedRange> otherLocked_;          // output matrix, output norm, rope factors
  std::vector<bool> streamed_;                    // [nLayer]
  std::vector<MappedRange> lockedRanges_;         // what mlock succeeded on, for munlock
  ResidencyReport report_;

  // the read-ahead thread: loads one streamed layer at a time
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = -1;               // layer queued for reading
  int reading_ = -1;               // layer being read now
  std::atomic<int> cancelLayer_{-1};
  bool stop_ = false;
};
