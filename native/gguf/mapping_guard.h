// Survives a model file that shrinks while it is mapped. Reading a page of a shared mapping past
// the file's new end raises SIGBUS, which would end the daemon in the middle of a request. The
// handler installed here recognises faults inside a watched mapping, puts a page of zeros where
// the missing page was, marks the mapping damaged and lets the read go on; the decode that read
// it then fails with an error (napi_model.cc checks damaged() after every forward pass), and
// every later one is refused up front. A SIGBUS anywhere else keeps its default meaning.
//
// Why not sigsetjmp/siglongjmp around the forward pass: the pass runs on the thread pool, and a
// jump out of one worker would leave the others waiting at the pool's barrier and skip the
// destructors of everything on the way out; patching the page needs neither.
#pragma once
#include <cstddef>

namespace mapping_guard {

// Starts watching [base, base + size); installs the SIGBUS handler on first use. At most 64
// mappings are watched at once (more are mapped but not guarded).
void watch(const void* base, size_t size);
void unwatch(const void* base);

// True once a read of the mapping starting at base faulted: some of what it returned was zeros,
// not the file.
bool damaged(const void* base);

}  // namespace mapping_guard
