// GGUF v2/v3 reader over a shared read-only mapping. Every count, length and offset is
// checked against the file size; a bad file throws GgufError naming the file and the field.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mapped_file.h"
#include "tensor_types.h"

struct GgufError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* ggufValueTypeName(GgufValueType t);

struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  // Scalars: integers in i (signed) / u (unsigned), floats in f, bool in u.
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string_view str;  // STRING: points into the mapping
  // ARRAY
  GgufValueType elemType = GgufValueType::UINT8;
  uint64_t count = 0;
  const uint8_t* elems = nullptr;          // numeric arrays: packed elements inside the mapping
  std::vector<std::string_view> strings;   // string arrays: each points into the mapping

  bool isInteger() const;
  bool isNumber() const;
  double asDouble() const;  // any numeric scalar
};

struct GgufTensor {
  std::string name;
  uint32_t nDims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the row length (contiguous)
  TensorType type = TensorType::F32;
  uint64_t offset = 0;           // relative to the data section
  const uint8_t* data = nullptr; // inside the mapping
  uint64_t nbytes = 0;
  int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);  // throws GgufError

  const std::string& path() const { return map_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t dataOffset() const { return dataOffset_; }
  uint64_t fileSize() const { return map_->size(); }
  const uint8_t* base() const { return map_->data(); }
  const MappedFile& mapping() const { return *map_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  const GgufValue* find(const std::string& key) const;       // nullptr when absent
  const GgufTensor* tensor(const std::string& name) const;   // nullptr when absent

  // Typed getters: absent -> fallback; present with the wrong type -> GgufError.
  std::string getString(const std::string& key, const std::string& fallback) const;
  int64_t getInt(const std::string& key, int64_t fallback) const;
  double getFloat(const std::string& key, double fallback) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Throws GgufError("<path>: <key> is required") when absent.
  int64_t requireInt(const std::string& key) const;

 private:
  void parse(const std::string& path);

  std::unique_ptr<MappedFile> map_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t dataOffset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::unordered_map<std::string, size_t> metadataIndex_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> tensorIndex_;
};
