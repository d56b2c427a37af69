// Shared by the libFuzzer harnesses: fuzz bytes as a file the real GGUF reader maps (a memfd, so
// no disk is touched), a small GGUF writer for vocabularies made from fuzz input, and a reader
// that cuts fuzz input into pieces.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../gguf/gguf.h"
#include "../tokenizer/vocab.h"

namespace fuzz {

// One memfd reused by every execution; GgufFile opens it by its /proc path like any file.
class MemoryFile {
 public:
  MemoryFile() : fd_(memfd_create("alpaca-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  const std::string& write(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0 || pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size)) abort();
    return path_;
  }
  const std::string& write(const std::string& bytes) {
    return write(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }

 private:
  int fd_;
  std::string path_;
};

// GGUF v3 with metadata only (no tensors): enough for Vocab::fromGguf.
class GgufBuilder {
 public:
  void string(const std::string& key, std::string_view value) {
    this->key(key, 8);
    str(value);
  }
  void u32(const std::string& key, uint32_t value) {
    this->key(key, 4);
    raw(&value, 4);
  }
  void strings(const std::string& key, const std::vector<std::string>& values) {
    array(key, 8, values.size());
    for (const std::string& v : values) str(v);
  }
  void floats(const std::string& key, const std::vector<float>& values) {
    array(key, 6, values.size());
    raw(values.data(), values.size() * 4);
  }
  void int32s(const std::string& key, const std::vector<int32_t>& values) {
    array(key, 5, values.size());
    raw(values.data(), values.size() * 4);
  }
  std::string bytes() const {
    std::string out("GGUF", 4);
    const uint32_t version = 3;
    const uint64_t nTensors = 0;
    out.append(reinterpret_cast<const char*>(&version), 4);
    out.append(reinterpret_cast<const char*>(&nTensors), 8);
    out.append(reinterpret_cast<const char*>(&count_), 8);
    return out + body_;
  }

 private:
  void raw(const void* p, size_t n) { body_.append(static_cast<const char*>(p), n); }
  void str(std::string_view s) {
    const uint64_t n = s.size();
    raw(&n, 8);
    body_.append(s);
  }
  void key(const std::string& k, uint32_t type) {
    count_++;
    str(k);
    raw(&type, 4);
  }
  void array(const std::string& k, uint32_t elemType, uint64_t n) {
    key(k, 9);
    raw(&elemType, 4);
    raw(&n, 8);
  }
  std::string body_;
  uint64_t count_ = 0;
};

// Consumes fuzz input from the front: a byte, or a '\n'-terminated line.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}
  uint8_t byte() {
    if (rest_.empty()) return 0;
    const uint8_t b = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return b;
  }
  // The next line; false at the end of input or at an empty line (the end of a list).
  bool line(std::string& out) {
    if (rest_.empty()) return false;
    size_t nl = rest_.find('\n');
    if (nl == std::string_view::npos) nl = rest_.size();
    out.assign(rest_.substr(0, nl));
    rest_.remove_prefix(std::min(rest_.size(), nl + 1));
    return !out.empty();
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

// What every tokenizer harness does with a vocabulary and a text: tokenize it every way, turn the
// ids back into text, and render every token of a small vocabulary (special ones too).
inline void exercise(const Vocab& vocab, std::string_view text, uint8_t flags) {
  const std::vector<int32_t> ids = vocab.tokenize(text, flags & 1, flags & 2);
  for (int32_t id : ids)
    if (!vocab.validId(id)) abort();  // a tokenizer must only produce ids of its vocabulary
  vocab.detokenize(ids, flags & 4);
  if (vocab.size() <= 4096)
    for (int32_t id = 0; id < vocab.size(); id++) vocab.tokenBytes(id, true);
}

// A vocabulary file named by an environment variable, loaded once per process.
inline std::unique_ptr<Vocab> loadVocabFromEnv(const char* variable, const char* fallback) {
  const char* path = getenv(variable);
  std::string p = path && *path ? path : fallback;
  static std::unique_ptr<GgufFile> keep;  // the vocabulary's strings point into its mapping
  keep = std::make_unique<GgufFile>(p);
  return Vocab::fromGguf(*keep);
}

// One tokenizer fuzz input: its first byte chooses a vocabulary built from the input itself (odd)
// or the real one (even) and the tokenize flags; the rest is the text. A clear std::exception is a
// correct answer to a bad vocabulary; a logic_error (out_of_range, invalid_argument: a std::stoi
// on a token's text, an .at() past the end) is a bug that would reach N-API unexpected.
template <typename BuildVocab>
int fuzzTokenizer(const uint8_t* data, size_t size, const Vocab& real, MemoryFile& file, BuildVocab vocabFromInput) {
  Input in(data, size);
  const uint8_t mode = in.byte();
  try {
    if (mode & 1) {
      std::unique_ptr<Vocab> vocab = vocabFromInput(in, file);
      exercise(*vocab, in.rest(), mode >> 1);
    } else {
      exercise(real, in.rest(), mode >> 1);
    }
  } catch (const std::logic_error& e) {
    fprintf(stderr, "logic_error: %s\n", e.what());
    abort();
  } catch (const std::exception&) {
  }
  return 0;
}

}  // namespace fuzz
