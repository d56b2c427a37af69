{
  "targets": [
    {
      "target_name": "alpaca",
      "sources": [
        "native/addon.cc",
        "native/napi_gguf.cc",
        "native/napi_tensor_types.cc",
        "native/napi_tokenizer.cc",
        "native/napi_model.cc",
        "native/mapped_file.cc",
        "native/gguf.cc",
        "native/tensor_types.cc",
        "native/kernels_scalar.cc",
        "native/model.cc",
        "native/forward.cc",
        "native/kv_cache.cc",
        "native/vocab.cc",
        "native/tokenizer_spm.cc",
        "native/tokenizer_bpe.cc",
        "native/unicode_tables.cc",
        "native/sampler.cc",
        "native/matmul.cc",
        "native/sd_notify.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
