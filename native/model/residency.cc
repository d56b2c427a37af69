#include "residency.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace {

// "blk.12.attn_q.weight" -> 12; -1 for tensors outside the layer stack.
int layerOf(const std::string& name) {
  if (name.compare(0, 4, "blk.") != 0) return -1;
  size_t dot = name.find('.', 4);
  if (dot == std::string::npos || dot == 4) return -1;
  int n = 0;
  for (size_t i = 4; i < dot; i++) {
    if (name[i] < '0' || name[i] > '9') return -1;
    n = n * 10 + (name[i] - '0');
  }
  return n;
}

const uint8_t* pageDown(const uint8_t* p, size_t page) {
  return reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(p) & ~(page - 1));
}
const uint8_t* pageUp(const uint8_t* p, size_t page) { return pageDown(p + page - 1, page); }

// Sorts ranges and joins those that touch or share a page.
std::vector<MappedRange> merged(std::vector<MappedRange> ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const MappedRange& a, const MappedRange& b) { return a.begin < b.begin; });
  std::vector<MappedRange> out;
  for (const MappedRange& r : ranges) {
    if (!out.empty() && r.begin <= out.back().end) out.back().end = std::max(out.back().end, r.end);
    else out.push_back(r);
  }
  return out;
}

std::string memlockLimitText() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_MEMLOCK, &rl) != 0) return "";
  if (rl.rlim_cur == RLIM_INFINITY) return " (RLIMIT_MEMLOCK unlimited)";
  return " (RLIMIT_MEMLOCK " + std::to_string(rl.rlim_cur / 1024) + " KiB)";
}

}  // namespace

ResidencyManager::ResidencyManager(const Model& model, const ResidencyOptions& options) : model_(model) {
  const int nLayer = static_cast<int>(model.hparams().nLayer);
  if (options.streamLayers < 0 || options.streamLayers > nLayer)
    throw std::invalid_argument("residency.streamLayers must be from 0 to " + std::to_string(nLayer) + " (the model's layers), got " +
                                std::to_string(options.streamLayers));
  long ps = ::sysconf(_SC_PAGESIZE);
  pageSize_ = ps > 0 ? static_cast<size_t>(ps) : 4096;

  // ---- byte ranges of each layer and of the matrices read on every pass ------------------
  const GgufFile& file = model.file();
  std::vector<std::vector<MappedRange>> outward(static_cast<size_t>(nLayer)), exact(static_cast<size_t>(nLayer));
  std::vector<uint64_t> bytesOfLayer(static_cast<size_t>(nLayer), 0);
  for (const GgufTensor& t : file.tensors()) {
    const int l = layerOf(t.name);
    if (l >= 0 && l < nLayer) {
      outward[l].push_back({pageDown(t.data, pageSize_), pageUp(t.data + t.nbytes, pageSize_)});
      // the alignment padding after a tensor belongs to it, so that neighbours join up
      const uint64_t a = file.alignment(), endOffset = static_cast<uint64_t>(t.data - file.base()) + t.nbytes;
      exact[l].push_back({t.data, file.base() + std::min<uint64_t>((endOffset + a - 1) / a * a, file.fileSize())});
      report_.layerBytes += t.nbytes;
      bytesOfLayer[l] += t.nbytes;
    }
  }
  for (size_t l = 0; l < outward.size(); l++) {
    layerRanges_.push_back(merged(std::move(outward[l])));
    std::vector<MappedRange> inward;
    for (const MappedRange& r : merged(std::move(exact[l]))) {
      const uint8_t* b = pageUp(r.begin, pageSize_);
      const uint8_t* e = pageDown(r.end, pageSize_);
      if (e > b) inward.push_back({b, e});
    }
    releaseRanges_.push_back(std::move(inward));
  }
  // The output matrix is read whole every pass; the embedding table one row per token, so it
  // is left to the page cache unless it doubles as the output (tied embeddings).
  std::vector<MappedRange> other;
  auto addOther = [&](const uint8_t* p, size_t n) {
    if (p && n) other.push_back({pageDown(p, pageSize_), pageUp(p + n, pageSize_)});
  };
  const Weight& out = model.output();
  addOther(out.data, out.rowBytes() * static_cast<size_t>(out.rows));
  addOther(reinterpret_cast<const uint8_t*>(model.outputNorm()), sizeof(float) * static_cast<size_t>(model.hparams().nEmbd));
  if (model.ropeFreqFactors())
    addOther(reinterpret_cast<const uint8_t*>(model.ropeFreqFactors()), sizeof(float) * static_cast<size_t>(model.hparams().nRot / 2));
  otherLocked_ = merged(std::move(other));
  readRowsOnly(model);

  // ---- which layers stream: spread evenly, so each has locked layers before it to read behind
  streamed_.assign(static_cast<size_t>(nLayer), false);
  const int s = options.streamLayers;
  for (int i = 0; i < s; i++) streamed_[static_cast<size_t>((static_cast<int64_t>(i + 1) * nLayer) / s - 1)] = true;
  report_.nLayer = nLayer;
  uint64_t largestStreamed = 0, secondStreamed = 0;
  for (int l = 0; l < nLayer; l++) {
    const uint64_t bytes = bytesOfLayer[static_cast<size_t>(l)];
    if (streamed_[l]) {
      report_.streamedLayers.push_back(l);
      report_.streamedBytes += bytes;
      if (bytes > largestStreamed) secondStreamed = largestStreamed, largestStreamed = bytes;
      else if (bytes > secondStreamed) secondStreamed = bytes;
    } else {
      report_.residentBytes += bytes;
    }
  }
  report_.windowBytes = largestStreamed + secondStreamed;
  for (const MappedRange& r : otherLocked_) report_.residentBytes += r.size();

  fd_ = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);  // -1 only loses the page-cache hint
  report_.lockRequested = options.lock;
  if (options.lock) lockResident();
  if (s > 0) {
    reader_ = std::thread([this] { readerLoop(); });
    queueReadAhead(report_.streamedLayers.front());
  }
}

// The embedding table is read one row per token. Read-ahead around each row (a 2 MiB folio under
// the mapping's MADV_HUGEPAGE, or the device's read-ahead window: 8 MiB on some disks) would pull
// the table into the page cache a few MiB per token, all charged to our cgroup: the plan counts
// a row's pages only. Not when the table is the output too (tied): that is read whole and locked.
void ResidencyManager::readRowsOnly(const Model& model) {
  const Weight& emb = model.tokenEmbedding();
  if (!emb.data || emb.data == model.output().data) return;
  const uint8_t* b = pageUp(emb.data, pageSize_);
  const uint8_t* e = pageDown(emb.data + emb.rowBytes() * static_cast<size_t>(emb.rows), pageSize_);
  if (e <= b) return;
  ::madvise(const_cast<uint8_t*>(b), static_cast<size_t>(e - b), MADV_NOHUGEPAGE);
  ::madvise(const_cast<uint8_t*>(b), static_cast<size_t>(e - b), MADV_RANDOM);
}

ResidencyManager::~ResidencyManager() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
    cancelLayer_ = reading_;
  }
  cv_.notify_all();
  if (reader_.joinable()) reader_.join();
  for (const MappedRange& r : lockedRanges_) ::munlock(r.begin, r.size());
  if (fd_ >= 0) ::close(fd_);
}

// mlock faults every page in and keeps it: the resident layers are read from storage once,
// here, and never evicted. Any failure (RLIMIT_MEMLOCK without CAP_IPC_LOCK: ENOMEM or EPERM)
// undoes all locks: the layers then stay in the page cache unpinned, and streaming is unchanged.
void ResidencyManager::lockResident() {
  std::vector<MappedRange> want = otherLocked_;
  for (size_t l = 0; l < layerRanges_.size(); l++)
    if (!streamed_[l]) want.insert(want.end(), layerRanges_[l].begin(), layerRanges_[l].end());
  uint64_t locked = 0;
  for (const MappedRange& r : merged(want)) {
    if (::mlock(r.begin, r.size()) != 0) {
      report_.lockError = std::string("mlock: ") + std::strerror(errno) + memlockLimitText();
      for (const MappedRange& done : lockedRanges_) ::munlock(done.begin, done.size());
      lockedRanges_.clear();
      return;
    }
    lockedRanges_.push_back(r);
    locked += r.size();
  }
  report_.lockingPermitted = true;
  report_.lockedBytes = locked;
  for (size_t l = 0; l < streamed_.size(); l++) report_.lockedLayers += streamed_[l] ? 0 : 1;
}

int ResidencyManager::nextStreamed(int layer) const {
  const std::vector<int>& s = report_.streamedLayers;
  auto it = std::upper_bound(s.begin(), s.end(), layer);
  return it == s.end() ? s.front() : *it;  // after the last: the first one of the next pass
}

void ResidencyManager::queueReadAhead(int layer) {
  {
    std::lock_guard<std::mutex> g(mu_);
    pending_ = layer;
  }
  cv_.notify_all();
}

void ResidencyManager::afterLayer(int layer) {
  if (!streamed_[static_cast<size_t>(layer)]) return;
  {
    // The reader must not be reading this layer while (or after) it is released.
    std::unique_lock<std::mutex> g(mu_);
    if (pending_ == layer) pending_ = -1;
    if (reading_ == layer) cancelLayer_ = layer;
    cv_.wait(g, [&] { return reading_ != layer; });
    cancelLayer_ = -1;
  }
  release(layer);
  if (layer == report_.streamedLayers.back()) {
    std::lock_guard<std::mutex> g(mu_);
    report_.passes++;
  }
  queueReadAhead(nextStreamed(layer));
}

// Drops the layer's pages from our page tables and then from the page cache, so that the
// cgroup stops being charged for them. Only whole pages inside the layer's tensors: a page
// shared with a locked neighbour must stay (and madvise refuses locked ranges).
void ResidencyManager::release(int layer) {
  const uint8_t* base = model_.file().base();
  for (const MappedRange& r : releaseRanges_[static_cast<size_t>(layer)]) {
    ::madvise(const_cast<uint8_t*>(r.begin), r.size(), MADV_DONTNEED);
    if (fd_ >= 0) ::posix_fadvise(fd_, static_cast<off_t>(r.begin - base), static_cast<off_t>(r.size()), POSIX_FADV_DONTNEED);
  }
}

void ResidencyManager::readerLoop() {
  std::unique_lock<std::mutex> g(mu_);
  for (;;) {
    cv_.wait(g, [&] { return stop_ || pending_ >= 0; });
    if (stop_) return;
    reading_ = pending_;
    pending_ = -1;
    const int layer = reading_;
    g.unlock();
    readLayer(layer);
    g.lock();
    reading_ = -1;
    cv_.notify_all();
  }
}

// Asks the kernel to start reading the whole layer, then touches one byte per page so that
// the reads have completed (and the pages are mapped) before the compute threads get there.
void ResidencyManager::readLayer(int layer) {
  for (const MappedRange& r : layerRanges_[static_cast<size_t>(layer)])
    ::madvise(const_cast<uint8_t*>(r.begin), r.size(), MADV_WILLNEED);
  volatile uint8_t sink = 0;
  for (const MappedRange& r : layerRanges_[static_cast<size_t>(layer)]) {
    for (const uint8_t* p = r.begin; p < r.end; p += pageSize_) {
      if (((p - r.begin) & ((pageSize_ << 8) - 1)) == 0 && cancelLayer_.load(std::memory_order_relaxed) == layer) return;
      sink = sink + *p;
    }
  }
}

ResidencyReport ResidencyManager::report() const {
  std::lock_guard<std::mutex> g(mu_);
  return report_;
}
