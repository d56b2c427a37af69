// A read-only, shared memory mapping of a whole file. Weights are used in place from it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

class MappedFile {
 public:
  // Throws std::runtime_error("<path>: <reason>") when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // What became of the file since it was mapped, from an fstat of the descriptor kept open for
  // this (cheap enough to ask before every decode) and a stat of the path.
  struct Status {
    bool truncated = false;  // shorter than the mapping: reading its end would raise SIGBUS
    bool modified = false;   // size or mtime differ: written in place
    bool replaced = false;   // the path names another file now (the mapping still holds the old one)
    bool damaged = false;    // a read already faulted (mapping_guard.h)
    uint64_t currentSize = 0;
    std::string problem() const;  // "" when the mapping can still be used
  };
  Status status() const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t dev_ = 0, ino_ = 0;
  int64_t mtimeSec_ = 0, mtimeNsec_ = 0;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};
