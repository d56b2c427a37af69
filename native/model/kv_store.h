// The prompt cache's files: the K and V rows of one sequence's first n positions, every layer,
// with the token ids they were computed from, so that a restarted daemon skips that prefill.
//
// A file, all little-endian:
//   [0, 32)        magic "ALPACAKV", format version, meta bytes M, n tokens N, n layers,
//                  row bytes, KV type (the cache's own, which the rows are stored in)
//   [32, 32+M)     meta: UTF-8 text the daemon owns (model identity, versions), opaque here
//   [.., +4N)      the token ids
//   pad to 64      data starts 64-byte aligned
//   data           for each layer: K rows [N][rowBytes], then V rows [N][rowBytes]
//   trailer 24     magic "ALPKVEND", hash of every header byte, hash of the data
// Written to "<path>.tmp", fsync'd, renamed over <path>: a reader sees a whole file or none.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kv_cache.h"

class GgufFile;

struct KvFileHeader {
  std::string meta;
  std::vector<int32_t> tokens;
  int nLayer = 0;
  size_t rowBytes = 0;
  TensorType kvType = TensorType::F16;
  uint64_t fileBytes = 0;
};

// 64-bit hash of a byte run; four independent lanes so that gigabytes hash at memory speed.
uint64_t hashBytes(const uint8_t* data, size_t n, uint64_t seed = 0);

// Identity of a mapped model: a hash of everything before its tensor data (the GGUF header,
// metadata and tensor directory) and of its size, as 16 hex digits.
std::string modelIdentity(const GgufFile& file);

// Writes positions [0, n) of sequence seq. Returns the bytes written. Throws std::runtime_error
// naming the path and the system's reason (a full disk, a missing directory); no partial file stays.
uint64_t saveKvPrefix(const KvCache& kv, int seq, int n, const std::string& path, const std::string& meta,
                      const std::vector<int32_t>& tokens);

// Reads and checks a file's header and trailer (sizes and the header's hash), not its data.
// Throws std::runtime_error saying what is wrong (truncated, not a KV file, damaged header).
KvFileHeader readKvFileHeader(const std::string& path);

// Restores positions [0, n) of the file (n ≤ its tokens) into sequence seq, whose cached length
// becomes n. The file must match the cache's layer count, row size and type, its tokens must
// start with `expected` (the caller's belief about it), and its data hash must hold; otherwise
// the sequence is left empty and std::runtime_error says why.
void restoreKvPrefix(KvCache& kv, int seq, int n, const std::string& path, const std::vector<int32_t>& expected);
