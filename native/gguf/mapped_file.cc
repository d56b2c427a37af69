#include "mapped_file.h"

#include "mapping_guard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// A read-only shared mapping of the whole file at an address that is a multiple of 2 MiB (file
// offset 0 is, too), so that a 2 MiB folio of the page cache can be mapped by one page-table
// entry: reserve 2 MiB more than needed, map the file over the aligned part, give the rest back.
void* mapAligned(int fd, size_t size) {
  void* reserved = ::mmap(nullptr, size + kHugePage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const auto start = reinterpret_cast<uintptr_t>(reserved);
  const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  void* p = ::mmap(reinterpret_cast<void*>(aligned), size, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::munmap(reserved, size + kHugePage);
    errno = err;
    return MAP_FAILED;
  }
  // The unused head and tail of the reservation.
  if (aligned > start) ::munmap(reserved, aligned - start);
  const uintptr_t end = aligned + ((size + 4095) & ~size_t{4095});
  const uintptr_t reservedEnd = start + size + kHugePage;
  if (reservedEnd > end) ::munmap(reinterpret_cast<void*>(end), reservedEnd - end);
  return p;
}

}  // namespace

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
  void* p = mapAligned(fd, size_);
  int err = errno;
  if (p == MAP_FAILED) {
    ::close(fd);
    throw std::runtime_error(path + ": cannot map: " + std::strerror(err));
  }
  // Where the page cache holds the file in 2 MiB folios (ext4, XFS and tmpfs on recent kernels),
  // an aligned mapping with this advice maps them whole: one TLB entry per 2 MiB of weights
  // instead of 512, on a decode that walks every page of the file for each token. Advice only:
  // kernels without it keep 4 KiB pages.
  ::madvise(p, size_, MADV_HUGEPAGE);
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
