// Checks mapping_guard against a real SIGBUS (test/93): maps a file, truncates it under the
// mapping, reads every byte. Without the guard the read past the new end kills the process.
// Prints "damaged=<0|1> sum=<n> status=<problem>" and exits 0 when it lived through it.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "../gguf/mapped_file.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  MappedFile file(argv[1]);
  if (truncate(argv[1], 4096) != 0) return 3;
  unsigned long sum = 0;
  for (size_t i = 0; i < file.size(); i++) sum += file.data()[i];  // faults past 4096
  const MappedFile::Status s = file.status();
  std::printf("damaged=%d truncated=%d sum=%lu status=%s\n", s.damaged, s.truncated, sum, s.problem().c_str());
  return 0;
}
