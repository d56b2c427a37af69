// GGUF layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata
// count, metadata key/values, tensor infos, padding to the alignment, tensor data.
// Everything read here is checked against the mapping before it is touched.
#include "gguf.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <limits>

namespace {

constexpr uint64_t kMaxStringBytes = uint64_t(1) << 30;   // no key or value is anywhere near this
constexpr uint64_t kMaxDims = 4;
// Counts a real file never comes near, which bound what a few header bytes can make us
// allocate. Without them, a sparse file whose header claims 2^28 strings has its zeros read
// as 2^28 empty strings: 4 GiB of string_views on a Pi with 4 GiB of RAM. Each kept record
// is larger than its bytes in the file (a 14-byte key/value becomes ~200 bytes of map and
// vector), so the file size alone is not a bound.
constexpr uint64_t kMaxKeyBytes = 65535;           // the GGUF spec's limit for keys
constexpr uint64_t kMaxTensorNameBytes = 256;      // llama.cpp allows 63 (GGML_MAX_NAME)
constexpr uint64_t kMaxMetadataCount = 1 << 16;    // real files: under 100
constexpr uint64_t kMaxTensorCount = 1 << 16;      // real files: a few thousand at most
constexpr uint64_t kMaxArrayStrings = 1 << 22;     // largest vocabularies / merge lists: ~300k
// Reserve no more than this up front: the counts are still the file's word, not a fact.
constexpr uint64_t kMaxReserve = 1 << 12;

// A cursor over the mapped header with checked reads.
class Reader {
 public:
  Reader(const std::string& path, const uint8_t* base, uint64_t size) : path_(path), base_(base), size_(size) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw GgufError(path_ + ": " + what + " (at byte " + std::to_string(pos_) + " of " + std::to_string(size_) + ")");
  }
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining()) fail("truncated file: " + what + " needs " + std::to_string(n) + " bytes");
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view readString(const std::string& what, uint64_t maxBytes = kMaxStringBytes) {
    return readStringNamed([&] { return what; }, maxBytes);
  }
  // `what` builds the field's name only when there is an error to report: a vocabulary of
  // 32000 strings should not cost 32000 message strings.
  template <typename Describe>
  std::string_view readStringNamed(Describe&& what, uint64_t maxBytes = kMaxStringBytes) {
    if (remaining() < 8) fail("truncated file: " + what() + " length needs 8 bytes");
    uint64_t len;
    std::memcpy(&len, base_ + pos_, 8);
    pos_ += 8;
    if (len > maxBytes)
      fail(what() + " has an absurd length " + std::to_string(len) + " (at most " + std::to_string(maxBytes) + ")");
    if (len > remaining()) fail("truncated file: " + what() + " needs " + std::to_string(len) + " bytes");
    std::string_view s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }
  const uint8_t* skip(uint64_t n, const std::string& what) {
    need(n, what);
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }

 private:
  const std::string& path_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

size_t scalarSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    default: return 0;
  }
}

bool validValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::FLOAT64); }

void decodeScalar(GgufValueType t, const uint8_t* p, GgufValue& v) {
  v.type = t;
  switch (t) {
    case GgufValueType::UINT8: v.u = *p; v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::INT8: v.i = static_cast<int8_t>(*p); v.u = static_cast<uint64_t>(v.i); break;
    case GgufValueType::BOOL: v.u = *p != 0; v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::UINT16: { uint16_t x; std::memcpy(&x, p, 2); v.u = x; v.i = x; break; }
    case GgufValueType::INT16: { int16_t x; std::memcpy(&x, p, 2); v.i = x; v.u = static_cast<uint64_t>(x); break; }
    case GgufValueType::UINT32: { uint32_t x; std::memcpy(&x, p, 4); v.u = x; v.i = x; break; }
    case GgufValueType::INT32: { int32_t x; std::memcpy(&x, p, 4); v.i = x; v.u = static_cast<uint64_t>(x); break; }
    case GgufValueType::UINT64: { uint64_t x; std::memcpy(&x, p, 8); v.u = x; v.i = static_cast<int64_t>(x); break; }
    case GgufValueType::INT64: { int64_t x; std::memcpy(&x, p, 8); v.i = x; v.u = static_cast<uint64_t>(x); break; }
    case GgufValueType::FLOAT32: { float x; std::memcpy(&x, p, 4); v.f = x; break; }
    case GgufValueType::FLOAT64: { double x; std::memcpy(&x, p, 8); v.f = x; break; }
    default: break;
  }
}

GgufValue readValue(Reader& r, GgufValueType type, const std::string& key) {
  GgufValue v;
  v.type = type;
  if (type == GgufValueType::STRING) {
    v.str = r.readString("value of " + key);
  } else if (type == GgufValueType::ARRAY) {
    uint32_t et = r.read<uint32_t>("array type of " + key);
    if (!validValueType(et)) r.fail(key + ": unknown array element type " + std::to_string(et));
    v.elemType = static_cast<GgufValueType>(et);
    if (v.elemType == GgufValueType::ARRAY) r.fail(key + ": nested arrays are not supported");
    v.count = r.read<uint64_t>("array length of " + key);
    if (v.elemType == GgufValueType::STRING) {
      // each string takes at least its 8-byte length
      if (v.count > r.remaining() / 8) r.fail(key + ": array of " + std::to_string(v.count) + " strings does not fit in the file");
      if (v.count > kMaxArrayStrings)
        r.fail(key + ": array of " + std::to_string(v.count) + " strings is over the limit of " + std::to_string(kMaxArrayStrings));
      v.strings.reserve(static_cast<size_t>(v.count));
      for (uint64_t i = 0; i < v.count; i++)
        v.strings.push_back(r.readStringNamed([&] { return key + "[" + std::to_string(i) + "]"; }));
    } else {
      size_t es = scalarSize(v.elemType);
      if (v.count > r.remaining() / es) r.fail(key + ": array of " + std::to_string(v.count) + " elements does not fit in the file");
      v.elems = r.skip(v.count * es, "elements of " + key);
    }
  } else {
    size_t n = scalarSize(type);
    decodeScalar(type, r.skip(n, "value of " + key), v);
  }
  return v;
}

bool mulOverflows(uint64_t a, uint64_t b, uint64_t& out) { return __builtin_mul_overflow(a, b, &out); }

}  // namespace

const char* ggufValueTypeName(GgufValueType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : "unknown";
}

bool GgufValue::isInteger() const {
  switch (type) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16: case GgufValueType::INT16:
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::UINT64: case GgufValueType::INT64:
    case GgufValueType::BOOL:
      return true;
    default:
      return false;
  }
}
bool GgufValue::isNumber() const { return isInteger() || type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64; }
double GgufValue::asDouble() const {
  if (type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64) return f;
  if (type == GgufValueType::UINT64) return static_cast<double>(u);
  return static_cast<double>(i);
}

GgufFile::GgufFile(const std::string& path) {
  try {
    map_ = std::make_unique<MappedFile>(path);
  } catch (const std::exception& e) {
    throw GgufError(e.what());
  }
  // The limits above should make this unreachable; should they not, the caller still
  // learns which file it was instead of a bare "std::bad_alloc".
  try {
    parse(path);
  } catch (const std::bad_alloc&) {
    throw GgufError(path + ": out of memory while reading the header");
  }
}

void GgufFile::parse(const std::string& path) {
  Reader r(path, map_->data(), map_->size());

  // --- header ---------------------------------------------------------------------------
  uint32_t magic = r.read<uint32_t>("magic");
  if (magic != 0x46554747u) r.fail("not a GGUF file (bad magic)");
  version_ = r.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) r.fail("unsupported GGUF version " + std::to_string(version_) + " (2 and 3 are read)");
  uint64_t nTensors = r.read<uint64_t>("tensor count");
  uint64_t nKv = r.read<uint64_t>("metadata count");
  // a key/value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least 8+4+8+4+8
  if (nKv > r.remaining() / 13) r.fail("metadata count " + std::to_string(nKv) + " does not fit in the file");
  if (nTensors > r.remaining() / 32) r.fail("tensor count " + std::to_string(nTensors) + " does not fit in the file");
  if (nKv > kMaxMetadataCount) r.fail("metadata count " + std::to_string(nKv) + " is over the limit of " + std::to_string(kMaxMetadataCount));
  if (nTensors > kMaxTensorCount) r.fail("tensor count " + std::to_string(nTensors) + " is over the limit of " + std::to_string(kMaxTensorCount));

  // --- metadata -------------------------------------------------------------------------
  metadata_.reserve(static_cast<size_t>(std::min(nKv, kMaxReserve)));
  for (uint64_t k = 0; k < nKv; k++) {
    std::string key(r.readStringNamed([&] { return "metadata key #" + std::to_string(k); }, kMaxKeyBytes));
    if (key.empty()) r.fail("metadata key #" + std::to_string(k) + " is empty");
    uint32_t t = r.read<uint32_t>("type of " + key);
    if (!validValueType(t)) r.fail(key + ": unknown value type " + std::to_string(t));
    GgufValue v = readValue(r, static_cast<GgufValueType>(t), key);
    if (metadataIndex_.count(key)) r.fail("duplicate metadata key " + key);
    metadataIndex_[key] = metadata_.size();
    metadata_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->isInteger() || a->type == GgufValueType::BOOL) r.fail("general.alignment must be an integer");
    if (a->u == 0 || a->u > (1u << 20) || (a->u & (a->u - 1)) != 0)
      r.fail("general.alignment " + std::to_string(a->u) + " is not a power of two up to 1 MiB");
    alignment_ = a->u;
  }

  // --- tensor infos ---------------------------------------------------------------------
  tensors_.reserve(static_cast<size_t>(std::min(nTensors, kMaxReserve)));
  for (uint64_t ti = 0; ti < nTensors; ti++) {
    GgufTensor t;
    t.name = std::string(r.readStringNamed([&] { return "tensor name #" + std::to_string(ti); }, kMaxTensorNameBytes));
    const std::string& name = t.name;
    if (name.empty()) r.fail("tensor #" + std::to_string(ti) + " has an empty name");
    t.nDims = r.read<uint32_t>("dimension count of " + name);
    if (t.nDims == 0 || t.nDims > kMaxDims) r.fail(name + ": " + std::to_string(t.nDims) + " dimensions (1 to 4 are allowed)");
    uint64_t elements = 1;
    for (uint32_t d = 0; d < t.nDims; d++) {
      uint64_t ne = r.read<uint64_t>("dimension " + std::to_string(d) + " of " + name);
      if (ne == 0 || ne > (uint64_t(1) << 40)) r.fail(name + ": dimension " + std::to_string(d) + " is " + std::to_string(ne));
      if (mulOverflows(elements, ne, elements) || elements > (uint64_t(1) << 48))
        r.fail(name + ": element count overflows");
      t.ne[d] = static_cast<int64_t>(ne);
    }
    uint32_t type = r.read<uint32_t>("type of " + name);
    const TypeTraits* tt = typeTraits(type);
    if (!tt) r.fail(name + ": unknown tensor type " + std::to_string(type));
    t.type = static_cast<TensorType>(type);
    if (t.ne[0] % tt->blockSize != 0)
      r.fail(name + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + tt->name + " block size " +
             std::to_string(tt->blockSize));
    uint64_t blocks = elements / static_cast<uint64_t>(tt->blockSize);
    if (mulOverflows(blocks, tt->blockBytes, t.nbytes)) r.fail(name + ": byte size overflows");
    t.offset = r.read<uint64_t>("offset of " + name);
    if (t.offset % alignment_ != 0)
      r.fail(name + ": offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(alignment_));
    if (tensorIndex_.count(name)) r.fail("duplicate tensor name " + name);
    tensorIndex_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // --- data section ---------------------------------------------------------------------
  uint64_t pos = r.pos();
  dataOffset_ = (pos + alignment_ - 1) / alignment_ * alignment_;
  uint64_t size = map_->size();
  if (dataOffset_ > size && nTensors > 0) r.fail("data section starts past the end of the file");
  for (GgufTensor& t : tensors_) {
    uint64_t begin, end;
    if (__builtin_add_overflow(dataOffset_, t.offset, &begin) || __builtin_add_overflow(begin, t.nbytes, &end) || end > size)
      throw GgufError(path + ": tensor " + t.name + " (" + std::to_string(t.nbytes) + " bytes at data offset " +
                      std::to_string(t.offset) + ") extends past the end of the file (" + std::to_string(size) + " bytes)");
    t.data = map_->data() + begin;
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadataIndex_.find(key);
  return it == metadataIndex_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensor* GgufFile::tensor(const std::string& name) const {
  auto it = tensorIndex_.find(name);
  return it == tensorIndex_.end() ? nullptr : &tensors_[it->second];
}

std::string GgufFile::getString(const std::string& key, const std::string& fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (v->type != GgufValueType::STRING)
    throw GgufError(path() + ": " + key + " must be a string, found " + ggufValueTypeName(v->type));
  return std::string(v->str);
}

int64_t GgufFile::getInt(const std::string& key, int64_t fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (!v->isInteger()) throw GgufError(path() + ": " + key + " must be an integer, found " + ggufValueTypeName(v->type));
  return v->i;
}

double GgufFile::getFloat(const std::string& key, double fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (!v->isNumber()) throw GgufError(path() + ": " + key + " must be a number, found " + ggufValueTypeName(v->type));
  return v->asDouble();
}

int64_t GgufFile::requireInt(const std::string& key) const {
  if (!find(key)) throw GgufError(path() + ": " + key + " is required");
  return getInt(key, 0);
}
