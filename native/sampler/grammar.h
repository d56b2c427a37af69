// GBNF grammars (llama.cpp's grammar format, docs/grammars.md there) compiled to a context-free
// grammar over BYTES: every character class becomes the UTF-8 byte sequences of its code points, so
// tokens are matched byte by byte and a token that ends inside a multi-byte character is no
// special case.
//
// Syntax: `name ::= alternatives` (names [a-zA-Z0-9-]+), `|`, grouping `( … )`, `*` `+` `?`
// `{m}` `{m,}` `{m,n}`, "literals", [classes] with ranges and ^negation, `.` (any character),
// escapes \x.. \u.... \U........ \t \n \r \\ \" \[ \] \-, `#` comments; a rule ends at a newline
// outside parentheses. Repetition is rewritten into rules whose recursive reference is the last
// symbol, so that matching never deepens the stack for `x*`.
#pragma once
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

// A grammar that cannot be compiled: message and 1-based position (column in characters).
class GrammarError : public std::runtime_error {
 public:
  GrammarError(const std::string& message, int line, int column)
      : std::runtime_error(message), line(line), column(column) {}
  int line, column;
};

// Limits that keep a hostile grammar from taking the daemon's memory or time.
struct GrammarLimits {
  size_t maxSymbols = 1u << 20;  // after repetitions are expanded
  uint32_t maxRepetition = 10000;  // m and n of {m,n}
  int maxNesting = 200;            // parentheses inside each other
};

// A symbol of the compiled grammar: a byte set to match, a rule to expand, or the end of an
// alternative.
struct GrammarSymbol {
  enum Kind : uint8_t { End, Bytes, Rule } kind;
  uint32_t value;  // Bytes: index into CompiledGrammar::byteSets; Rule: rule index
};

struct CompiledGrammar {
  // symbols: every alternative of every rule, each closed by an End symbol.
  std::vector<GrammarSymbol> symbols;
  // ruleAlternatives[r]: where each alternative of rule r starts in `symbols`.
  std::vector<std::vector<uint32_t>> ruleAlternatives;
  std::vector<std::string> ruleNames;  // "" for rules made by the compiler
  std::vector<std::array<uint64_t, 4>> byteSets;
  uint32_t root = 0;
  // Bytes no byte set tells apart share a class: the matcher's transition tables have one column
  // per class instead of 256.
  std::array<uint8_t, 256> byteClass{};
  uint32_t nByteClasses = 1;
  std::vector<uint8_t> classByte;  // one representative byte per class
  std::vector<uint16_t> classSize;
  // shortest[p]: the fewest bytes that complete the alternative from symbol p on (0 at its End;
  // kNoCompletion where nothing can). A parse stack needs the sum over its positions, so the
  // matcher knows how far every state is from a complete sentence (an answer closed in budget).
  static constexpr uint32_t kNoCompletion = UINT32_MAX;
  std::vector<uint32_t> shortest;

  bool matches(uint32_t byteSet, uint8_t byte) const {
    return (byteSets[byteSet][byte >> 6] >> (byte & 63)) & 1;
  }
};

// Parses and compiles GBNF text; `root` names the start rule. Throws GrammarError.
CompiledGrammar compileGbnf(std::string_view text, std::string_view root, const GrammarLimits& limits = {});
