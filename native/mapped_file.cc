#include "mapped_file.h"

#include "mapping_guard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw std::runtime_error(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(path + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    throw std::runtime_error(path + ": file is empty");
  }
  // MAP_SHARED + PROT_READ: the weights live in the page cache once, shared with every
  // process mapping the same file, and are never copied into anonymous memory.
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  int err = errno;
  if (p == MAP_FAILED) {
    ::close(fd);
    throw std::runtime_error(path + ": cannot map: " + std::strerror(err));
  }
  // The descriptor stays open: an fstat of it tells whether this very file shrank, whatever the
  // path names by then.
  fd_ = fd;
  dev_ = st.st_dev, ino_ = st.st_ino;
  mtimeSec_ = st.st_mtim.tv_sec, mtimeNsec_ = st.st_mtim.tv_nsec;
  data_ = static_cast<const uint8_t*>(p);
  mapping_guard::watch(data_, size_);
}

MappedFile::~MappedFile() {
  if (data_) {
    mapping_guard::unwatch(data_);
    ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  if (fd_ >= 0) ::close(fd_);
}

MappedFile::Status MappedFile::status() const {
  Status s;
  s.damaged = mapping_guard::damaged(data_);
  struct stat st {};
  if (::fstat(fd_, &st) == 0) {
    s.currentSize = static_cast<uint64_t>(st.st_size);
    s.truncated = s.currentSize < size_;
    s.modified = s.currentSize != size_ || st.st_mtim.tv_sec != mtimeSec_ || st.st_mtim.tv_nsec != mtimeNsec_;
  }
  struct stat named {};
  s.replaced = ::stat(path_.c_str(), &named) != 0 || named.st_ino != ino_ || named.st_dev != dev_;
  return s;
}

std::string MappedFile::Status::problem() const {
  if (damaged) return "the model file shrank while it was mapped and a read of its missing part failed; restart the daemon";
  if (truncated)
    return "the model file was truncated to " + std::to_string(currentSize) +
           " bytes while it was mapped; restart the daemon (replace a model with a new file and a rename, never in place)";
  return "";
}
