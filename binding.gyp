{
  "targets": [
    {
      "target_name": "alpaca",
      "sources": [
        "native/napi/addon.cc",
        "native/napi/napi_gguf.cc",
        "native/napi/napi_tensor_types.cc",
        "native/napi/napi_tokenizer.cc",
        "native/napi/napi_model.cc",
        "native/napi/napi_sampler.cc",
        "native/napi/napi_grammar.cc",
        "native/napi/napi_kv_store.cc",
        "native/gguf/mapped_file.cc",
        "native/gguf/mapping_guard.cc",
        "native/gguf/gguf.cc",
        "native/gguf/tensor_types.cc",
        "native/kernels/scalar.cc",
        "native/kernels/kernel_table.cc",
        "native/kernels/cpu_features.cc",
        "native/kernels/thread_pool.cc",
        "native/kernels/matmul.cc",
        "native/model/architecture.cc",
        "native/model/arch_llama.cc",
        "native/model/arch_qwen2.cc",
        "native/model/arch_qwen3.cc",
        "native/model/model.cc",
        "native/model/attention.cc",
        "native/model/forward.cc",
        "native/model/residency.cc",
        "native/kernels/stream_probe.cc",
        "native/model/kv_cache.cc",
        "native/model/kv_store.cc",
        "native/tokenizer/vocab.cc",
        "native/tokenizer/tokenizer_spm.cc",
        "native/tokenizer/tokenizer_bpe.cc",
        "native/tokenizer/unicode_tables.cc",
        "native/sampler/sampler.cc",
        "native/sampler/grammar.cc",
        "native/sampler/grammar_matcher.cc",
        "native/sampler/token_mask.cc",
        "native/napi/sd_notify.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["target_arch=='x64'", {"dependencies": ["alpaca_kernels_avx2", "alpaca_kernels_avx512_vnni", "alpaca_kernels_avx512_vbmi"]}],
        ["target_arch=='arm64'", {
          "sources": ["native/kernels/arm/neon.cc"],
          "cflags_cc": ["-mtune=cortex-a72"],
          "dependencies": ["alpaca_kernels_neon_dotprod"]
        }]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "alpaca_kernels_avx2",
          "type": "static_library",
          "sources": ["native/kernels/x86/avx2.cc"],
          "cflags": ["-fPIC"],
          "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-mavx2", "-mfma", "-mf16c"]
        },
        {
          "target_name": "alpaca_kernels_avx512_vnni",
          "type": "static_library",
          "sources": ["native/kernels/x86/avx512_vnni.cc"],
          "cflags": ["-fPIC"],
          "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-mavx2", "-mfma", "-mf16c",
                        "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"]
        },
        {
          "target_name": "alpaca_kernels_avx512_vbmi",
          "type": "static_library",
          "sources": ["native/kernels/x86/avx512_vbmi.cc"],
          "cflags": ["-fPIC"],
          "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-mavx2", "-mfma", "-mf16c",
                        "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mavx512vbmi"]
        }
      ]
    }],
    ["target_arch=='arm64'", {
      "targets": [
        {
          "target_name": "alpaca_kernels_neon_dotprod",
          "type": "static_library",
          "sources": ["native/kernels/arm/neon_dotprod.cc"],
          "cflags": ["-fPIC"],
          "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-march=armv8.2-a+dotprod", "-mtune=cortex-a76"]
        }
      ]
    }]
  ]
}
