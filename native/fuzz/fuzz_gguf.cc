// libFuzzer harness for the GGUF reader: any bytes as a model file. A bad file must end in a
// GgufError (or another std::exception) naming the problem; never a crash, a hang or a read
// outside the mapping. Files that parse go on to the vocabulary and the model binding, which
// trust what the reader checked.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "../model/model.h"
#include "fuzz_common.h"

namespace {

// Touches every byte the reader claims is inside the file, so ASan sees a bad offset or length.
uint64_t touch(const GgufFile& f) {
  uint64_t sum = 0;
  for (const auto& [key, v] : f.metadata()) {
    sum += key.size() + v.str.size();
    for (std::string_view s : v.strings) sum += s.empty() ? 0 : static_cast<uint8_t>(s.back());
    if (v.elems && v.count) sum += v.elems[0];
  }
  for (const GgufTensor& t : f.tensors())
    if (t.nbytes) sum += t.data[0] + t.data[t.nbytes - 1];
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::MemoryFile file;
  const std::string& path = file.write(data, size);
  try {
    GgufFile gguf(path);
    volatile uint64_t sink = touch(gguf);
    (void)sink;
    try {
      std::unique_ptr<Vocab> vocab = Vocab::fromGguf(gguf);
      fuzz::exercise(*vocab, "Hello world, <s> 123 \xe2\x96\x81\xc3\xa9", 7);
    } catch (const std::logic_error& e) {
      fprintf(stderr, "logic_error: %s\n", e.what());
      abort();  // a bug, not a bad file: see fuzz_spm.cc
    } catch (const std::exception&) {
    }
    try {
      Model model(path);
    } catch (const std::exception&) {
    }
  } catch (const std::exception&) {
  }
  return 0;
}
