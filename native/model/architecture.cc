#include "architecture.h"

extern const Architecture kLlamaArchitecture, kQwen2Architecture, kQwen3Architecture;

namespace {
// The table: every architecture the engine runs.
const Architecture* const kArchitectures[] = {&kLlamaArchitecture, &kQwen2Architecture, &kQwen3Architecture};
}  // namespace

const Architecture* findArchitecture(const std::string& name) {
  for (const Architecture* a : kArchitectures)
    if (name == a->name) return a;
  return nullptr;
}

std::string supportedArchitectures() {
  std::string s;
  for (const Architecture* a : kArchitectures) s += (s.empty() ? "" : ", ") + std::string(a->name);
  return s;
}
