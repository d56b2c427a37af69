// N-API surface of the engine: Model (weights + KV cache + forward pass); the Sampler is napi_sampler.cc.
#include <atomic>
#include <functional>
#include <memory>

#include <stdexcept>

#include "../model/forward.h"
#include "../model/kv_store.h"
#include "napi_common.h"
#include "napi_grammar.h"
#include "../kernels/stream_probe.h"

using napi_common::guarded;
using napi_common::optionalInt;
using napi_common::optionalNumber;

namespace {

TensorType kvTypeFromName(const Napi::Env& env, const std::string& name) {
  if (name == "f16") return TensorType::F16;
  if (name == "f32") return TensorType::F32;
  if (name == "q8_0") return TensorType::Q8_0;
  throw Napi::RangeError::New(env, "kvType must be f16, f32 or q8_0");
}

// Reads {tokens, positions, seqs, logits} typed arrays into a batch.
std::vector<BatchToken> readBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "batch must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto int32s = [&](const char* key) {
    Napi::Value v = o.Get(key);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, std::string("batch.") + key + " must be an Int32Array");
    return v.As<Napi::Int32Array>();
  };
  Napi::Int32Array tokens = int32s("tokens"), positions = int32s("positions"), seqs = int32s("seqs");
  Napi::Value lv = o.Get("logits");
  if (!lv.IsTypedArray() || lv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "batch.logits must be a Uint8Array");
  Napi::Uint8Array logits = lv.As<Napi::Uint8Array>();
  size_t n = tokens.ElementLength();
  if (positions.ElementLength() != n || seqs.ElementLength() != n || logits.ElementLength() != n)
    throw Napi::RangeError::New(env, "batch arrays must have the same length");
  std::vector<BatchToken> batch(n);
  for (size_t i = 0; i < n; i++) batch[i] = {tokens[i], positions[i], seqs[i], logits[i] != 0};
  return batch;
}

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Model",
                       {InstanceMethod("info", &ModelWrap::info), InstanceMethod("tokenize", &ModelWrap::tokenize),
                        InstanceMethod("tokenBytes", &ModelWrap::tokenBytes), InstanceMethod("decode", &ModelWrap::decode),
                        InstanceMethod("specialTexts", &ModelWrap::specialTexts),
                        InstanceMethod("decodeAsync", &ModelWrap::decodeAsync),
                        InstanceMethod("kvLength", &ModelWrap::kvLength), InstanceMethod("kvTruncate", &ModelWrap::kvTruncate),
                        InstanceMethod("kvCopyPrefix", &ModelWrap::kvCopyPrefix),
                        InstanceMethod("kvUsedCells", &ModelWrap::kvUsedCells),
                        InstanceMethod("identity", &ModelWrap::identity),
                        InstanceMethod("kvSaveAsync", &ModelWrap::kvSaveAsync),
                        InstanceMethod("kvRestoreAsync", &ModelWrap::kvRestoreAsync),
                        InstanceMethod("fileStatus", &ModelWrap::fileStatus),
                        InstanceMethod("streamWeights", &ModelWrap::streamWeights),
                        InstanceMethod("compileGrammar", &ModelWrap::compileGrammar),
                        InstanceMethod("close", &ModelWrap::close)});
  }

  // new Model(path, {nCtx, nSeq, threads, kvType, residency: {streamLayers, lock}, commitKv})
  ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    Napi::Env env = info.Env();
    std::string path = napi_common::requireString(info, 0, "model path");
    Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    ContextParams params;
    params.nSeq = optionalInt(opts, "nSeq", 1, 1, 256);
    params.threads = optionalInt(opts, "threads", 1, 1, 256);
    Napi::Value kvt = opts.Get("kvType");
    if (!kvt.IsUndefined()) {
      if (!kvt.IsString()) throw Napi::TypeError::New(env, "kvType must be a string");
      params.kvType = kvTypeFromName(env, kvt.As<Napi::String>().Utf8Value());
    }
    // residency: absent = unmanaged (the kernel's LRU decides what stays in RAM)
    bool managed = false;
    ResidencyOptions residency;
    Napi::Value rv = opts.Get("residency");
    if (!rv.IsUndefined() && !rv.IsNull()) {
      if (!rv.IsObject() || rv.IsArray()) throw Napi::TypeError::New(env, "residency must be an object {streamLayers, lock}");
      Napi::Object r = rv.As<Napi::Object>();
      residency.streamLayers = optionalInt(r, "streamLayers", 0, 0, 1024);
      Napi::Value lock = r.Get("lock");
      if (!lock.IsUndefined() && !lock.IsBoolean()) throw Napi::TypeError::New(env, "residency.lock must be a boolean");
      residency.lock = lock.IsUndefined() ? true : lock.As<Napi::Boolean>().Value();
      managed = true;
    }
    Napi::Value commit = opts.Get("commitKv");
    if (!commit.IsUndefined() && !commit.IsBoolean()) throw Napi::TypeError::New(env, "commitKv must be a boolean");
    const bool commitKv = commit.IsBoolean() && commit.As<Napi::Boolean>().Value();
    guarded(env, [&] {
      model_ = std::make_unique<Model>(path);
      params.nCtx = optionalInt(opts, "nCtx", static_cast<int>(std::min<int64_t>(model_->hparams().nCtxTrain, 4096)), 1,
                                1 << 20);
      context_ = std::make_unique<InferenceContext>(*model_, params);
      grammars_.attach(&model_->vocab());
      if (managed) {
        residency_ = std::make_unique<ResidencyManager>(*model_, residency);
        context_->setResidency(residency_.get());
      }
      if (commitKv) context_->kv().commit();
      return 0;
    });
  }

 private:
  void ensureOpen(const Napi::Env& env) const {
    if (!context_) throw Napi::Error::New(env, "model is closed");
    if (busy_) throw Napi::Error::New(env, "model is busy with an asynchronous decode");
  }

  // The mapped file must still hold every byte the forward pass may read (mapping_guard.h).
  // Throws the reason when it does not; cheap (one fstat), so asked before every decode.
  static void checkMapping(const Model& model) {
    const std::string problem = model.file().mapping().status().problem();
    if (!problem.empty()) throw std::runtime_error(model.file().path() + ": " + problem);
  }
  // After a pass: a read that faulted returned zeros, so its logits are not to be used.
  static void checkNotDamaged(const Model& model) {
    if (model.file().mapping().status().damaged) checkMapping(model);
  }

  // streamWeights() -> {bytes, ms}: one read of the weights a decode step uses (stream_probe.h).
  Napi::Value streamWeights(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ensureOpen(env);
    checkMapping(*model_);
    StreamProbe probe;
    guarded(env, [&] {
      probe = streamDecodeWeights(context_->pool(), *model_);
      return 0;
    });
    checkNotDamaged(*model_);
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytes", static_cast<double>(probe.bytes));
    o.Set("ms", probe.seconds * 1000.0);
    return o;
  }

  // fileStatus() -> {ok, truncated, modified, replaced, damaged, size, mappedSize, problem}
  Napi::Value fileStatus(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) throw Napi::Error::New(env, "model is closed");
    const MappedFile& m = model_->file().mapping();
    const MappedFile::Status s = m.status();
    const std::string problem = s.problem();
    Napi::Object o = Napi::Object::New(env);
    o.Set("ok", problem.empty());
    o.Set("truncated", s.truncated);
    o.Set("modified", s.modified);
    o.Set("replaced", s.replaced);
    o.Set("damaged", s.damaged);
    o.Set("size", static_cast<double>(s.currentSize));
    o.Set("mappedSize", static_cast<double>(m.size()));
    if (!problem.empty()) o.Set("problem", problem);
    return o;
  }

  Napi::Value info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) throw Napi::Error::New(env, "model is closed");
    const Hparams& hp = model_->hparams();
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", model_->file().path());
    o.Set("architecture", hp.architecture);
    o.Set("family", hp.arch->family);
    o.Set("ropeStyle", hp.arch->rope == RopeStyle::NeoxHalves ? "neox" : "pairs");
    o.Set("name", hp.name);
    o.Set("nVocab", static_cast<double>(hp.nVocab));
    o.Set("nCtxTrain", static_cast<double>(hp.nCtxTrain));
    o.Set("nEmbd", static_cast<double>(hp.nEmbd));
    o.Set("nLayer", static_cast<double>(hp.nLayer));
    o.Set("nFf", static_cast<double>(hp.nFf));
    o.Set("nHead", static_cast<double>(hp.nHead));
    o.Set("nHeadKv", static_cast<double>(hp.nHeadKv));
    o.Set("headDim", static_cast<double>(hp.headDim));
    o.Set("nRot", static_cast<double>(hp.nRot));
    o.Set("ropeTheta", hp.ropeTheta);
    o.Set("rmsEps", hp.rmsEps);
    o.Set("weightBytes", static_cast<double>(model_->weightBytes()));
    o.Set("fileBytes", static_cast<double>(model_->file().fileSize()));
    o.Set("bos", model_->vocab().bos());
    o.Set("eos", model_->vocab().eos());
    Napi::Array eog = Napi::Array::New(env);
    uint32_t k = 0;
    for (int32_t id = 0; id < model_->vocab().size(); id++)
      if (model_->vocab().isEndOfGeneration(id)) eog.Set(k++, id);
    o.Set("eog", eog);
    o.Set("addBos", model_->vocab().addBosByDefault());
    if (context_) {
      const ContextParams& p = context_->params();
      o.Set("nCtx", p.nCtx);
      o.Set("nSeq", p.nSeq);
      o.Set("threads", p.threads);
      o.Set("kvType", traitsOf(p.kvType).name);
      o.Set("kvBytes", static_cast<double>(context_->kv().bytes()));
    }
    o.Set("residency", residencyInfo(env));
    // where the weight bytes are, for the memory plan: the layer stack streams, the rest does not
    double layerBytes = 0, embeddingBytes = 0, outputBytes = 0;
    for (const GgufTensor& t : model_->file().tensors()) {
      if (t.name.compare(0, 4, "blk.") == 0) layerBytes += static_cast<double>(t.nbytes);
      else if (t.name == "token_embd.weight") embeddingBytes = static_cast<double>(t.nbytes);
      else if (t.name == "output.weight") outputBytes = static_cast<double>(t.nbytes);
    }
    o.Set("layerBytes", layerBytes);
    o.Set("embeddingBytes", embeddingBytes);
    o.Set("outputBytes", outputBytes);  // 0 with tied embeddings: the embedding table is the output
    Napi::Object types = Napi::Object::New(env);
    for (const GgufTensor& t : model_->file().tensors()) {
      const char* name = traitsOf(t.type).name;
      Napi::Value prev = types.Get(name);
      types.Set(name, (prev.IsNumber() ? prev.As<Napi::Number>().Int32Value() : 0) + 1);
    }
    o.Set("tensorTypes", types);
    return o;
  }

  // {managed, lockedLayers, streamedLayers: [i…], residentBytes, lockedBytes, streamedBytes, windowBytes,
  //  lockRequested, lockingPermitted, lockError, passes}; unmanaged: every weight counts as resident.
  Napi::Object residencyInfo(const Napi::Env& env) const {
    Napi::Object r = Napi::Object::New(env);
    ResidencyReport rep;
    if (residency_) rep = residency_->report();
    else rep.residentBytes = model_->weightBytes();
    r.Set("managed", residency_ != nullptr);
    r.Set("lockedLayers", rep.lockedLayers);
    Napi::Array streamed = Napi::Array::New(env, rep.streamedLayers.size());
    for (size_t i = 0; i < rep.streamedLayers.size(); i++) streamed.Set(static_cast<uint32_t>(i), rep.streamedLayers[i]);
    r.Set("streamedLayers", streamed);
    r.Set("residentBytes", static_cast<double>(rep.residentBytes));
    r.Set("lockedBytes", static_cast<double>(rep.lockedBytes));
    r.Set("streamedBytes", static_cast<double>(rep.streamedBytes));
    r.Set("windowBytes", static_cast<double>(rep.windowBytes));
    r.Set("lockRequested", rep.lockRequested);
    r.Set("lockingPermitted", rep.lockingPermitted);
    r.Set("lockError", rep.lockError);
    r.Set("passes", static_cast<double>(rep.passes));
    return r;
  }

  // tokenize(text, addBos = vocab default, parseSpecial = false, textOnly?: Uint32Array) -> Int32Array
  // textOnly: [begin, end) byte offset pairs, ascending and apart, where no special token is matched.
  Napi::Value tokenize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) throw Napi::Error::New(env, "model is closed");
    std::string text = napi_common::requireString(info, 0, "text");
    bool addBos = napi_common::optionalBool(info, 1, model_->vocab().addBosByDefault());
    bool special = napi_common::optionalBool(info, 2, false);
    std::vector<Vocab::ByteRange> textOnly;
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
        throw Napi::TypeError::New(env, "textOnly must be a Uint32Array of [begin, end) byte offset pairs");
      Napi::Uint32Array a = info[3].As<Napi::Uint32Array>();
      if (a.ElementLength() % 2 != 0) throw Napi::RangeError::New(env, "textOnly must hold pairs of offsets");
      for (size_t i = 0; i < a.ElementLength(); i += 2) {
        const size_t begin = a[i], end = a[i + 1];
        if (begin >= end || end > text.size() || (!textOnly.empty() && begin < textOnly.back().end))
          throw Napi::RangeError::New(env, "textOnly ranges must be non-empty, ascending, apart and inside the text");
        textOnly.push_back({begin, end});
      }
    }
    std::vector<int32_t> ids = guarded(env, [&] { return model_->vocab().tokenize(text, addBos, special, textOnly); });
    Napi::Int32Array out = Napi::Int32Array::New(env, ids.size());
    for (size_t i = 0; i < ids.size(); i++) out[i] = ids[i];
    return out;
  }

  // specialTexts() -> string[]: the texts of control, user-defined and unknown tokens, longest first.
  Napi::Value specialTexts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) throw Napi::Error::New(env, "model is closed");
    const Vocab& v = model_->vocab();
    Napi::Array out = Napi::Array::New(env, v.specialTokens().size());
    for (size_t i = 0; i < v.specialTokens().size(); i++) out.Set(static_cast<uint32_t>(i), v.piece(v.specialTokens()[i]));
    return out;
  }

  Napi::Value tokenBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) throw Napi::Error::New(env, "model is closed");
    double id = napi_common::requireNumber(info, 0, "token id");
    if (!(id >= 0 && id < model_->vocab().size())) throw Napi::RangeError::New(env, "token id out of range");
    bool special = napi_common::optionalBool(info, 1, false);
    std::string bytes = guarded(env, [&] { return model_->vocab().tokenBytes(static_cast<int32_t>(id), special); });
    return Napi::Buffer<char>::Copy(env, bytes.data(), bytes.size());
  }

  Napi::Value logitsArray(const Napi::Env& env, const std::vector<float>& logits) {
    Napi::Float32Array out = Napi::Float32Array::New(env, logits.size());
    std::copy(logits.begin(), logits.end(), out.Data());
    return out;
  }

  // decode({tokens, positions, seqs, logits}) -> Float32Array [nOut * nVocab]
  Napi::Value decode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ensureOpen(env);
    std::vector<BatchToken> batch = readBatch(info);
    const std::vector<float>* logits = nullptr;
    guarded(env, [&] {
      checkMapping(*model_);
      logits = &context_->decode(batch);
      checkNotDamaged(*model_);
      return 0;
    });
    return logitsArray(env, *logits);
  }

  class DecodeWorker : public Napi::AsyncWorker {
   public:
    DecodeWorker(Napi::Env env, ModelWrap* owner, std::vector<BatchToken> batch)
        : Napi::AsyncWorker(env), owner_(owner), batch_(std::move(batch)), deferred_(Napi::Promise::Deferred::New(env)) {
      owner_->Ref();
    }
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        checkMapping(*owner_->model_);
        logits_ = owner_->context_->decode(batch_);
        checkNotDamaged(*owner_->model_);
      } catch (const std::exception& e) {
        SetError(e.what());
      }
    }
    void OnOK() override {
      finish();
      deferred_.Resolve(owner_->logitsArray(Env(), logits_));
      owner_->Unref();
    }
    void OnError(const Napi::Error& e) override {
      finish();
      deferred_.Reject(e.Value());
      owner_->Unref();
    }

   private:
    void finish() { owner_->busy_ = false; }
    ModelWrap* owner_;
    std::vector<BatchToken> batch_;
    std::vector<float> logits_;
    Napi::Promise::Deferred deferred_;
  };

  // decodeAsync(batch) -> Promise<Float32Array>; one at a time per model.
  Napi::Value decodeAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ensureOpen(env);
    std::vector<BatchToken> batch = readBatch(info);
    auto* worker = new DecodeWorker(env, this, std::move(batch));
    busy_ = true;
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  }

  int seqArg(const Napi::CallbackInfo& info, size_t i) {
    ensureOpen(info.Env());
    double s = napi_common::requireNumber(info, i, "sequence");
    if (!(s >= 0 && s < context_->params().nSeq)) throw Napi::RangeError::New(info.Env(), "sequence out of range");
    return static_cast<int>(s);
  }
  Napi::Value kvLength(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), context_ ? context_->kv().length(seqArg(info, 0)) : 0); }
  Napi::Value kvTruncate(const Napi::CallbackInfo& info) {
    int seq = seqArg(info, 0);
    double from = napi_common::requireNumber(info, 1, "position");
    context_->kv().truncate(seq, static_cast<int>(std::max(0.0, std::min(from, 1e9))));
    return info.Env().Undefined();
  }
  Napi::Value kvCopyPrefix(const Napi::CallbackInfo& info) {
    int from = seqArg(info, 0), to = seqArg(info, 1);
    double n = napi_common::requireNumber(info, 2, "count");
    if (!(n >= 0 && n <= context_->kv().length(from))) throw Napi::RangeError::New(info.Env(), "prefix longer than the source");
    context_->kv().copyPrefix(from, to, static_cast<int>(n));
    return info.Env().Undefined();
  }
  Napi::Value kvUsedCells(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), context_ ? context_->kv().usedCells() : 0);
  }
  // compileGrammar(gbnf, root = "root") -> Grammar (napi_grammar.h)
  Napi::Value compileGrammar(const Napi::CallbackInfo& info) {
    if (!model_) throw Napi::Error::New(info.Env(), "model is closed");
    return grammars_.compile(info);
  }

  // ---- the prompt cache's files (kv_store.h) ---------------------------------------------------
  // Both run on a worker thread beside decodes of other sequences: they touch only the rows of
  // their own sequence, which the scheduler keeps out of every batch until they settle.

  // A promise settled from a worker thread; work() throws to reject.
  class IoWorker : public Napi::AsyncWorker {
   public:
    IoWorker(Napi::Env env, ModelWrap* owner, std::function<double()> work)
        : Napi::AsyncWorker(env), owner_(owner), work_(std::move(work)), deferred_(Napi::Promise::Deferred::New(env)) {
      owner_->Ref();
      owner_->ioPending_++;
    }
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        result_ = work_();
      } catch (const std::exception& e) {
        SetError(e.what());
      }
    }
    void OnOK() override {
      settle();
      deferred_.Resolve(Napi::Number::New(Env(), result_));
    }
    void OnError(const Napi::Error& e) override {
      settle();
      deferred_.Reject(e.Value());
    }

   private:
    void settle() {
      owner_->ioPending_--;
      owner_->Unref();
    }
    ModelWrap* owner_;
    std::function<double()> work_;
    double result_ = 0;
    Napi::Promise::Deferred deferred_;
  };

  static std::vector<int32_t> tokenList(const Napi::CallbackInfo& info, size_t i) {
    if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(info.Env(), "tokens must be an Int32Array");
    Napi::Int32Array a = info[i].As<Napi::Int32Array>();
    return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
  }

  // identity() -> 16 hex digits: the GGUF header, metadata, tensor directory and file size.
  Napi::Value identity(const Napi::CallbackInfo& info) {
    ensureOpen(info.Env());
    return Napi::String::New(info.Env(), modelIdentity(model_->file()));
  }

  // kvSaveAsync(seq, n, path, meta, tokens: Int32Array[n]) -> Promise<bytes written>
  Napi::Value kvSaveAsync(const Napi::CallbackInfo& info) {
    const int seq = seqArg(info, 0);
    const double n = napi_common::requireNumber(info, 1, "count");
    std::string path = napi_common::requireString(info, 2, "path"), meta = napi_common::requireString(info, 3, "meta");
    std::vector<int32_t> tokens = tokenList(info, 4);
    if (!(n >= 1 && n <= context_->kv().length(seq)) || tokens.size() != static_cast<size_t>(n))
      throw Napi::RangeError::New(info.Env(), "save: the count must be 1..the sequence's length, one token id each");
    const KvCache& kv = context_->kv();
    auto* worker = new IoWorker(info.Env(), this, [&kv, seq, n, path, meta, tokens] {
      return static_cast<double>(saveKvPrefix(kv, seq, static_cast<int>(n), path, meta, tokens));
    });
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  }

  // kvRestoreAsync(seq, n, path, expected: Int32Array) -> Promise<n>; the sequence is emptied
  // first and holds exactly n positions when it resolves, none when it rejects.
  Napi::Value kvRestoreAsync(const Napi::CallbackInfo& info) {
    const int seq = seqArg(info, 0);
    const double n = napi_common::requireNumber(info, 1, "count");
    std::string path = napi_common::requireString(info, 2, "path");
    std::vector<int32_t> expected = tokenList(info, 3);
    if (!(n >= 1 && n <= context_->kv().nCtx())) throw Napi::RangeError::New(info.Env(), "restore: count out of range");
    context_->kv().truncate(seq, 0);
    KvCache& kv = context_->kv();
    auto* worker = new IoWorker(info.Env(), this, [&kv, seq, n, path, expected] {
      restoreKvPrefix(kv, seq, static_cast<int>(n), path, expected);
      return n;
    });
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    if (busy_) throw Napi::Error::New(info.Env(), "model is busy with an asynchronous decode");
    if (ioPending_ > 0) throw Napi::Error::New(info.Env(), "model is busy saving or restoring cached prompt cells");
    grammars_.detach();
    context_.reset();
    residency_.reset();
    model_.reset();
    return info.Env().Undefined();
  }

  // declared in this order so that they are destroyed context first, model (the mapping) last
  std::unique_ptr<Model> model_;
  std::unique_ptr<ResidencyManager> residency_;
  std::unique_ptr<InferenceContext> context_;
  GrammarSource grammars_;  // declared after model_: detached before the vocabulary goes
  std::atomic<bool> busy_{false};
  std::atomic<int> ioPending_{0};
};

}  // namespace

void registerModel(Napi::Env env, Napi::Object exports) {
  exports.Set("Model", ModelWrap::define(env));
}
