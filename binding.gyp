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
        "native/mapping_guard.cc",
        "native/gguf.cc",
        "native/tensor_types.cc",
        "native/kernels_scalar.cc",
        "native/kernels_simd.cc",
        "native/cpu_features.cc",
        "native/thread_pool.cc",
        "native/matmul.cc",
        "native/model.cc",
        "native/forward.cc",
        "native/residency.cc",
        "native/stream_probe.cc",
        "native/kv_cache.cc",
        "native/vocab.cc",
        "native/tokenizer_spm.cc",
        "native/tokenizer_bpe.cc",
        "native/unicode_tables.cc",
        "native/sampler.cc",
        "native/sd_notify.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["target_arch=='x64'", {"dependencies": ["alpaca_kernels_avx2", "alpaca_kernels_avx512_vnni", "alpaca_kernels_avx512_vbmi"]}],
        ["target_arch=='arm64'", {
          "sources": ["native/kernels_neon.cc"],
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
          "sources": ["native/kernels_avx2.cc"],
          "cflags": ["-fPIC"],
          "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-mavx2", "-mfma", "-mf16c"]
        },
        {
          "target_name": "alpaca_kernels_avx512_vnni",
          "type": "static_library",
          "sources": ["native/kernels_avx512_vnni.cc"],
          "cflags": ["-fPIC"],
          "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-mavx2", "-mfma", "-mf16c",
                        "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"]
        },
        {
          "target_name": "alpaca_kernels_avx512_vbmi",
          "type": "static_library",
          "sources": ["native/kernels_avx512_vbmi.cc"],
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
          "sources": ["native/kernels_neon_dotprod.cc"],
          "cflags": ["-fPIC"],
          "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-march=armv8.2-a+dotprod", "-mtune=cortex-a76"]
        }
      ]
    }]
  ]
}
