#include "kv_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "../gguf/gguf.h"

namespace {

constexpr char kMagic[8] = {'A', 'L', 'P', 'A', 'C', 'A', 'K', 'V'};
constexpr char kEndMagic[8] = {'A', 'L', 'P', 'K', 'V', 'E', 'N', 'D'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kFixedBytes = 32, kTrailerBytes = 24, kDataAlign = 64;
constexpr uint32_t kMaxMetaBytes = 1 << 20, kMaxTokens = 1 << 24;

// ---- hashing: four lanes over 32-byte stripes, then a final avalanche -------------------------

constexpr uint64_t kMulA = 0x9E3779B97F4A7C15ull, kMulB = 0xC2B2AE3D27D4EB4Full, kMulC = 0x165667B19E3779F9ull;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian hosts only (x86-64, arm64)
}
inline uint64_t mixLane(uint64_t lane, uint64_t word) { return rotl(lane + word * kMulB, 31) * kMulA; }
inline uint64_t avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kMulB;
  h ^= h >> 29;
  h *= kMulC;
  h ^= h >> 32;
  return h;
}

// The same hash fed in pieces: a file's data is hashed as it streams through the cache's rows.
class StreamHash {
 public:
  explicit StreamHash(uint64_t seed) : lanes_{seed + kMulA + kMulB, seed + kMulB, seed, seed - kMulA} {}
  void update(const uint8_t* p, size_t n) {
    total_ += n;
    if (held_ > 0) {
      const size_t take = std::min(n, sizeof tail_ - held_);
      std::memcpy(tail_ + held_, p, take);
      held_ += take, p += take, n -= take;
      if (held_ < sizeof tail_) return;
      stripe(tail_);
      held_ = 0;
    }
    for (; n >= 32; p += 32, n -= 32) stripe(p);
    std::memcpy(tail_, p, n);
    held_ = n;
  }
  uint64_t finish() const {
    uint64_t h = rotl(lanes_[0], 1) + rotl(lanes_[1], 7) + rotl(lanes_[2], 12) + rotl(lanes_[3], 18);
    h ^= total_ * kMulC;
    size_t i = 0;
    for (; i + 8 <= held_; i += 8) h = rotl(h ^ mixLane(0, load64(tail_ + i)), 27) * kMulA + kMulC;
    for (; i < held_; i++) h = rotl(h ^ (tail_[i] * kMulC), 11) * kMulA;
    return avalanche(h);
  }

 private:
  void stripe(const uint8_t* p) {
    for (int i = 0; i < 4; i++) lanes_[i] = mixLane(lanes_[i], load64(p + 8 * i));
  }
  uint64_t lanes_[4];
  uint8_t tail_[32];
  size_t held_ = 0;
  uint64_t total_ = 0;
};

// ---- small file helpers: every failure names the path and the system's reason -----------------

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}
[[noreturn]] void failErrno(const std::string& path, const std::string& what) { fail(path, what + " (" + std::strerror(errno) + ")"); }

class Fd {
 public:
  Fd(const std::string& path, int flags, mode_t mode = 0) : path_(path), fd_(::open(path.c_str(), flags | O_CLOEXEC, mode)) {
    if (fd_ < 0) failErrno(path, "cannot open");
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void writeAll(const void* data, size_t n) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, std::min<size_t>(n, 1 << 30));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) failErrno(path_, "cannot write");
      p += w, n -= static_cast<size_t>(w);
    }
  }
  void readAt(void* data, size_t n, uint64_t offset) const {
    uint8_t* p = static_cast<uint8_t*>(data);
    while (n > 0) {
      const ssize_t r = ::pread(fd_, p, std::min<size_t>(n, 1 << 30), static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) failErrno(path_, "cannot read");
      if (r == 0) fail(path_, "is truncated");
      p += r, n -= static_cast<size_t>(r), offset += static_cast<uint64_t>(r);
    }
  }
  void closeChecked() {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) failErrno(path_, "cannot close");
  }

 private:
  std::string path_;
  int fd_;
};

void put32(std::vector<uint8_t>& out, size_t at, uint32_t v) { std::memcpy(out.data() + at, &v, 4); }
uint32_t get32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

size_t alignUp(size_t n) { return (n + kDataAlign - 1) / kDataAlign * kDataAlign; }

// The header's bytes: fixed fields, meta, tokens, padding up to the data.
std::vector<uint8_t> encodeHeader(const KvCache& kv, int n, const std::string& meta, const std::vector<int32_t>& tokens) {
  std::vector<uint8_t> h(alignUp(kFixedBytes + meta.size() + 4 * tokens.size()), 0);
  std::memcpy(h.data(), kMagic, 8);
  put32(h, 8, kFormatVersion);
  put32(h, 12, static_cast<uint32_t>(meta.size()));
  put32(h, 16, static_cast<uint32_t>(n));
  put32(h, 20, static_cast<uint32_t>(kv.nLayer()));
  put32(h, 24, static_cast<uint32_t>(kv.rowBytes()));
  put32(h, 28, static_cast<uint32_t>(kv.type()));
  std::memcpy(h.data() + kFixedBytes, meta.data(), meta.size());
  std::memcpy(h.data() + kFixedBytes + meta.size(), tokens.data(), 4 * tokens.size());
  return h;
}

}  // namespace

uint64_t hashBytes(const uint8_t* data, size_t n, uint64_t seed) {
  StreamHash h(seed);
  h.update(data, n);
  return h.finish();
}

std::string modelIdentity(const GgufFile& file) {
  const uint64_t h = hashBytes(file.base(), static_cast<size_t>(file.dataOffset()), file.fileSize());
  static const char* hex = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 0; i < 16; i++) s[i] = hex[(h >> (60 - 4 * i)) & 15];
  return s;
}

uint64_t saveKvPrefix(const KvCache& kv, int seq, int n, const std::string& path, const std::string& meta,
                      const std::vector<int32_t>& tokens) {
  if (n <= 0 || n > kv.length(seq)) throw std::invalid_argument("the prefix to save is longer than the sequence");
  if (tokens.size() != static_cast<size_t>(n)) throw std::invalid_argument("one token id per saved position");
  if (meta.size() > kMaxMetaBytes) throw std::invalid_argument("the cache file's meta text is too long");
  const std::vector<uint8_t> header = encodeHeader(kv, n, meta, tokens);
  const std::string tmp = path + ".tmp";
  const size_t block = kv.rowBytes() * static_cast<size_t>(n);  // one layer's K (or V) rows
  StreamHash data(1);
  try {
    Fd out(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    out.writeAll(header.data(), header.size());
    for (int l = 0; l < kv.nLayer(); l++) {
      for (const uint8_t* rows : {kv.keyRow(l, seq, 0), kv.valueRow(l, seq, 0)}) {
        data.update(rows, block);
        out.writeAll(rows, block);
      }
    }
    uint8_t trailer[kTrailerBytes];
    const uint64_t headerHash = hashBytes(header.data(), header.size()), dataHash = data.finish();
    std::memcpy(trailer, kEndMagic, 8);
    std::memcpy(trailer + 8, &headerHash, 8);
    std::memcpy(trailer + 16, &dataHash, 8);
    out.writeAll(trailer, sizeof trailer);
    if (::fsync(out.get()) != 0) failErrno(tmp, "cannot sync");
    out.closeChecked();
    if (::rename(tmp.c_str(), path.c_str()) != 0) failErrno(path, "cannot rename the finished file into place");
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  return header.size() + 2 * block * static_cast<size_t>(kv.nLayer()) + kTrailerBytes;
}

KvFileHeader readKvFileHeader(const std::string& path) {
  Fd in(path, O_RDONLY);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) failErrno(path, "cannot stat");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kFixedBytes + kTrailerBytes) fail(path, "is truncated (too short to be a KV cache file)");
  uint8_t fixed[kFixedBytes];
  in.readAt(fixed, sizeof fixed, 0);
  if (std::memcmp(fixed, kMagic, 8) != 0) fail(path, "is not a KV cache file");
  if (get32(fixed + 8) != kFormatVersion)
    fail(path, "has cache format " + std::to_string(get32(fixed + 8)) + ", this build reads " + std::to_string(kFormatVersion));
  const uint32_t metaBytes = get32(fixed + 12), nTokens = get32(fixed + 16);
  if (metaBytes > kMaxMetaBytes || nTokens == 0 || nTokens > kMaxTokens) fail(path, "has a damaged header");
  KvFileHeader h;
  h.nLayer = static_cast<int>(get32(fixed + 20));
  h.rowBytes = get32(fixed + 24);
  h.kvType = static_cast<TensorType>(get32(fixed + 28));
  h.fileBytes = size;
  const size_t headerBytes = alignUp(kFixedBytes + metaBytes + 4ull * nTokens);
  const uint64_t dataBytes = 2ull * static_cast<uint64_t>(h.nLayer) * h.rowBytes * nTokens;
  if (h.kvType != TensorType::F16 && h.kvType != TensorType::F32 && h.kvType != TensorType::Q8_0)
    fail(path, "has a damaged header (unknown KV type)");
  if (h.nLayer <= 0 || h.rowBytes == 0 || headerBytes + dataBytes + kTrailerBytes != size)
    fail(path, "is truncated or damaged (its size does not match its header)");
  std::vector<uint8_t> header(headerBytes);
  in.readAt(header.data(), header.size(), 0);
  uint8_t trailer[kTrailerBytes];
  in.readAt(trailer, sizeof trailer, size - kTrailerBytes);
  uint64_t headerHash;
  std::memcpy(&headerHash, trailer + 8, 8);
  if (std::memcmp(trailer, kEndMagic, 8) != 0 || headerHash != hashBytes(header.data(), header.size()))
    fail(path, "has a damaged header (its checksum does not match)");
  h.meta.assign(reinterpret_cast<const char*>(header.data() + kFixedBytes), metaBytes);
  h.tokens.resize(nTokens);
  std::memcpy(h.tokens.data(), header.data() + kFixedBytes + metaBytes, 4ull * nTokens);
  return h;
}

void restoreKvPrefix(KvCache& kv, int seq, int n, const std::string& path, const std::vector<int32_t>& expected) {
  kv.truncate(seq, 0);
  const KvFileHeader h = readKvFileHeader(path);
  if (h.nLayer != kv.nLayer() || h.rowBytes != kv.rowBytes() || h.kvType != kv.type())
    fail(path, "was written for another model shape or KV type");
  const int total = static_cast<int>(h.tokens.size());
  if (n <= 0 || n > total || n > kv.nCtx()) fail(path, "holds fewer positions than asked for");
  if (expected.size() > h.tokens.size() || !std::equal(expected.begin(), expected.end(), h.tokens.begin()))
    fail(path, "holds other tokens than its index says");
  Fd in(path, O_RDONLY);
  const uint64_t dataStart = h.fileBytes - kTrailerBytes - 2ull * h.nLayer * h.rowBytes * total;
  const size_t used = h.rowBytes * static_cast<size_t>(n), block = h.rowBytes * static_cast<size_t>(total);
  // The data comes in through a buffer that stays in the CPU's cache: hashed there, then copied
  // into the cache's rows (rows past n: hashed, then dropped). The hash reads it from the cache
  // rather than memory, and the rows are written by a plain copy: on the 2-core VM this was
  // measured on, pread() straight into freshly allocated rows ran at 0.5-0.6 GiB/s the first
  // time (250 MiB of 7B-shaped KV: 405-514 ms; through the buffer, 68 ms).
  std::vector<uint8_t> buffer(std::min<size_t>(block, size_t{1} << 20));
  StreamHash data(1);
  const auto take = [&](uint8_t* rows, size_t bytes, uint64_t at) {  // rows null: hash only
    for (size_t done = 0; done < bytes;) {
      const size_t piece = std::min(buffer.size(), bytes - done);
      in.readAt(buffer.data(), piece, at + done);
      data.update(buffer.data(), piece);
      if (rows) std::memcpy(rows + done, buffer.data(), piece);
      done += piece;
    }
  };
  uint64_t offset = dataStart;
  for (int l = 0; l < kv.nLayer(); l++) {
    for (uint8_t* rows : {kv.keyRow(l, seq, 0), kv.valueRow(l, seq, 0)}) {
      take(rows, used, offset);
      take(nullptr, block - used, offset + used);
      offset += block;
    }
  }
  uint64_t dataHash;
  in.readAt(&dataHash, 8, h.fileBytes - 8);
  if (dataHash != data.finish()) fail(path, "has damaged data (its checksum does not match)");
  kv.setLength(seq, n);
}
