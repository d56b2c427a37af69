// grammar_bench VOCAB.gguf GRAMMAR.gbnf TEXT [reps] [cold|full|served|all|none]
//
// The cost of the token mask, per token of TEXT (which the grammar must admit), on a vocabulary
// read from a GGUF file. TEXT is tokenized as generated text (no BOS, no space prefix); at every
// token boundary the mask is computed, then the grammar advances over the token. Three figures:
//   cold    a new matcher for every position: the first time a grammar state is ever seen
//   full    the whole vocabulary walked from the current state (transition tables warm, no mask
//           cache): what every token would cost if no state ever repeated
//   served  what the sampler pays: the mask cache by state, and forced tokens (a mask of one)
// Each position's time is the fastest of `reps` runs, in CPU time of the thread. A fifth argument
// measures one of them alone (`none`: only the walk over the text, a baseline for counting).
// Prints one JSON object. Built by bench/build-grammar-bench.sh and run by bench/constrained.mjs,
// natively and under qemu-aarch64 (bench/count-mask-instructions.sh counts instructions there).
#include <algorithm>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../gguf/gguf.h"
#include "../sampler/token_mask.h"
#include "../tokenizer/vocab.h"

namespace {
std::string readFile(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string("cannot read ") + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// CPU time of this thread: on a shared machine, time spent waiting for a core is not counted.
double nowNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

struct Stats {
  double mean = 0, median = 0, p90 = 0, max = 0;
};
Stats stats(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  std::sort(v.begin(), v.end());
  s.median = v[v.size() / 2];
  s.p90 = v[std::min(v.size() - 1, v.size() * 9 / 10)];
  s.max = v.back();
  return s;
}
void print(const char* name, const Stats& s, bool last) {
  std::printf("  \"%s\": {\"meanUs\": %.2f, \"medianUs\": %.2f, \"p90Us\": %.2f, \"maxUs\": %.2f}%s\n", name, s.mean / 1e3,
              s.median / 1e3, s.p90 / 1e3, s.max / 1e3, last ? "" : ",");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: grammar_bench VOCAB.gguf GRAMMAR.gbnf TEXT [reps] [cold|full|served|all|none]\n");
    return 2;
  }
  try {
    const int reps = argc > 4 ? std::max(1, std::atoi(argv[4])) : 3;
    const std::string only = argc > 5 ? argv[5] : "all";
    GgufFile file(argv[1]);
    std::unique_ptr<Vocab> vocab = Vocab::fromGguf(file);
    auto ref = std::make_shared<VocabRef>();
    ref->vocab = vocab.get();
    auto bundle = std::make_shared<GrammarBundle>();
    bundle->grammar = std::make_shared<const CompiledGrammar>(compileGbnf(readFile(argv[2]), "root"));
    bundle->tokens = TokenIndex::build(*vocab);
    bundle->vocab = ref;
    bundle->root = "root";
    const std::string text = readFile(argv[3]);
    const std::vector<int32_t> tokens = vocab->tokenizeContinuation(text);
    TokenMask mask;

    std::vector<double> cold, full, served;
    size_t allowedSum = 0;
    GrammarCursor walk(bundle), servedCursor(bundle);
    for (size_t i = 0; i <= tokens.size(); i++) {
      if (only == "all" || only == "cold") {
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
          GrammarCursor fresh(bundle);
          for (size_t k = 0; k < i; k++) fresh.accept(tokens[k]);
          const double t0 = nowNs();
          fresh.grammarMask(mask);
          best = std::min(best, nowNs() - t0);
        }
        cold.push_back(best);
      }
      if (only == "all" || only == "full") {
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
          const double t0 = nowNs();
          allowedSum += walk.grammarMask(mask);
          best = std::min(best, nowNs() - t0);
        }
        full.push_back(best);
      }
      if (only == "all" || only == "served") {
        const double t0 = nowNs();
        const TokenMask& m = servedCursor.mask();
        served.push_back(nowNs() - t0);
        allowedSum += m.endAllowed ? 1 : 0;
      }
      if (i == tokens.size()) break;
      if (!walk.accept(tokens[i])) throw std::runtime_error("the grammar does not admit the text at token " + std::to_string(i));
      // the served cursor takes the forced run as the sampler does
      const auto& f = servedCursor.forced();
      if (!f.empty() && f.front() != tokens[i]) {
        GrammarCursor again(bundle);
        for (size_t k = 0; k <= i; k++) again.accept(tokens[k]);
        servedCursor = std::move(again);
      } else {
        servedCursor.accept(tokens[i]);
      }
    }
    std::printf("{\n  \"vocab\": %d,\n  \"tokens\": %zu,\n  \"reps\": %d,\n  \"meanAllowed\": %.1f,\n", vocab->size(),
                tokens.size(), reps, static_cast<double>(allowedSum) / static_cast<double>(tokens.size() + 1) / reps);
    print("cold", stats(cold), false);
    print("full", stats(full), false);
    print("served", stats(served), true);
    std::printf("}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grammar_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
