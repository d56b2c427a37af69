// GBNF text -> CompiledGrammar (grammar.h). One pass of recursive descent writes rules whose
// alternatives are already byte-level symbols; then references are resolved, left recursion is
// refused (the matcher would expand such a rule forever), and the rules are laid out flat.
#include "grammar.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <unordered_map>

namespace {

using ByteSet = std::array<uint64_t, 4>;
using Alternative = std::vector<GrammarSymbol>;

constexpr uint32_t kUnbounded = UINT32_MAX;

bool isWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

void addByte(ByteSet& s, uint8_t b) { s[b >> 6] |= uint64_t{1} << (b & 63); }

void encodeUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The UTF-8 encodings of the code points lo..hi as sequences of byte ranges, each position's range
// independent of the others (the classic split at encoding lengths and continuation-byte
// boundaries). Surrogates have no UTF-8 encoding and are left out.
using ByteRanges = std::vector<std::pair<uint8_t, uint8_t>>;
void utf8Sequences(uint32_t lo, uint32_t hi, std::vector<ByteRanges>& out) {
  if (lo > hi) return;
  if (lo <= 0xDFFF && hi >= 0xD800) {
    if (lo < 0xD800) utf8Sequences(lo, 0xD7FF, out);
    if (hi > 0xDFFF) utf8Sequences(0xE000, hi, out);
    return;
  }
  static const uint32_t kLast[] = {0x7F, 0x7FF, 0xFFFF};
  for (uint32_t last : kLast)
    if (lo <= last && hi > last) {
      utf8Sequences(lo, last, out);
      utf8Sequences(last + 1, hi, out);
      return;
    }
  const int n = hi < 0x80 ? 1 : hi < 0x800 ? 2 : hi < 0x10000 ? 3 : 4;
  for (int i = 1; i < n; i++) {
    const uint32_t m = (uint32_t{1} << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8Sequences(lo, lo | m, out);
        utf8Sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8Sequences(lo, (hi & ~m) - 1, out);
        utf8Sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  std::string a, b;
  encodeUtf8(lo, a);
  encodeUtf8(hi, b);
  ByteRanges r;
  for (size_t k = 0; k < a.size(); k++) r.push_back({static_cast<uint8_t>(a[k]), static_cast<uint8_t>(b[k])});
  out.push_back(r);
}

class GbnfCompiler {
 public:
  GbnfCompiler(std::string_view text, const GrammarLimits& limits) : src_(text), limits_(limits) {}

  CompiledGrammar run(std::string_view rootName) {
    skipSpace(true);
    if (pos_ >= src_.size()) fail("the grammar is empty: it needs at least a rule such as root ::= \"yes\" | \"no\"");
    while (pos_ < src_.size()) parseRule();
    for (size_t r = 0; r < rules_.size(); r++)
      if (!defined_[r]) failAt(firstUse_[r], "rule \"" + names_[r] + "\" is used but never defined");
    auto root = ids_.find(std::string(rootName));
    if (root == ids_.end()) failAt(0, "the grammar has no rule named \"" + std::string(rootName) + "\"");
    refuseLeftRecursion();
    return layOut(root->second);
  }

 private:
  // ─── Errors ──────────────────────────────────────────────────────────────────────────────────
  [[noreturn]] void failAt(size_t offset, const std::string& message) const {
    int line = 1, column = 1;
    for (size_t i = 0; i < offset && i < src_.size(); i++) {
      const auto c = static_cast<uint8_t>(src_[i]);
      if (c == '\n') {
        line++;
        column = 1;
      } else if ((c & 0xC0) != 0x80) {
        column++;
      }
    }
    throw GrammarError("line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + message, line,
                       column);
  }
  [[noreturn]] void fail(const std::string& message) const { failAt(pos_, message); }

  std::string here() const {
    if (pos_ >= src_.size()) return "the end of the grammar";
    std::string s(src_.substr(pos_, 12));
    const size_t nl = s.find('\n');
    if (nl != std::string::npos) s.resize(nl);
    return s.empty() ? "a line break" : "\"" + s + "\"";
  }

  // ─── Lexing ──────────────────────────────────────────────────────────────────────────────────
  char peek(size_t k = 0) const { return pos_ + k < src_.size() ? src_[pos_ + k] : '\0'; }
  bool atEnd() const { return pos_ >= src_.size(); }

  // Spaces, tabs and # comments; line breaks too when newlineOk (inside parentheses, after | or ::=).
  void skipSpace(bool newlineOk) {
    while (!atEnd()) {
      const char c = peek();
      if (c == ' ' || c == '\t') {
        pos_++;
      } else if (c == '#') {
        while (!atEnd() && peek() != '\n' && peek() != '\r') pos_++;
      } else if (newlineOk && (c == '\n' || c == '\r')) {
        pos_++;
      } else {
        break;
      }
    }
  }

  std::string parseName() {
    const size_t start = pos_;
    while (!atEnd() && isWordChar(peek())) pos_++;
    if (pos_ == start) fail("expected a rule name, found " + here());
    return std::string(src_.substr(start, pos_ - start));
  }

  uint32_t hexDigits(int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
      const char c = peek();
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail("expected " + std::to_string(n) + " hex digits in the escape");
      v = v * 16 + static_cast<uint32_t>(d);
      pos_++;
    }
    return v;
  }

  // One character of a literal or class: an escape or one UTF-8 encoded code point.
  uint32_t parseChar() {
    if (atEnd()) fail("unexpected end of the grammar inside a literal or class");
    const size_t start = pos_;
    if (peek() == '\\') {
      pos_++;
      const char e = peek();
      pos_++;
      uint32_t cp;
      switch (e) {
        case 'x': cp = hexDigits(2); break;
        case 'u': cp = hexDigits(4); break;
        case 'U': cp = hexDigits(8); break;
        case 't': return '\t';
        case 'r': return '\r';
        case 'n': return '\n';
        case '\\': case '"': case '[': case ']': case '-': return static_cast<uint8_t>(e);
        default:
          pos_ = start;
          fail("unknown escape " + here().substr(0, 3) + "\" (use \\x, \\u, \\U, \\t, \\r, \\n, \\\\, \\\", \\[, \\], \\-)");
      }
      if (cp > 0x10FFFF) failAt(start, "escape beyond the last Unicode code point U+10FFFF");
      return cp;
    }
    const auto b0 = static_cast<uint8_t>(peek());
    const int len = b0 < 0x80 ? 1 : (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : (b0 & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || pos_ + len > src_.size()) fail("the grammar is not valid UTF-8 here");
    uint32_t cp = len == 1 ? b0 : len == 2 ? b0 & 0x1F : len == 3 ? b0 & 0x0F : b0 & 0x07;
    for (int i = 1; i < len; i++) {
      const auto b = static_cast<uint8_t>(src_[pos_ + i]);
      if ((b & 0xC0) != 0x80) fail("the grammar is not valid UTF-8 here");
      cp = (cp << 6) | (b & 0x3F);
    }
    pos_ += len;
    return cp;
  }

  uint32_t parseCount() {
    const size_t start = pos_;
    uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + static_cast<uint64_t>(peek() - '0');
      if (v > limits_.maxRepetition)
        failAt(start, "repetition count above " + std::to_string(limits_.maxRepetition) + " (use * or + for no limit)");
      pos_++;
    }
    if (pos_ == start) fail("expected a number in {m,n}, found " + here());
    return static_cast<uint32_t>(v);
  }

  // ─── Building blocks ─────────────────────────────────────────────────────────────────────────
  uint32_t ruleId(const std::string& name, size_t usedAt) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    const uint32_t id = newRule(name, usedAt);
    ids_.emplace(name, id);
    return id;
  }

  uint32_t newRule(const std::string& name, size_t at) {
    rules_.emplace_back();
    names_.push_back(name);
    defined_.push_back(name.empty());
    firstUse_.push_back(at);
    return static_cast<uint32_t>(rules_.size() - 1);
  }

  uint32_t byteSet(const ByteSet& s) {
    auto it = setIds_.find(s);
    if (it != setIds_.end()) return it->second;
    const auto id = static_cast<uint32_t>(sets_.size());
    sets_.push_back(s);
    setIds_.emplace(s, id);
    return id;
  }

  void count(size_t n) {
    symbols_ += n;
    if (symbols_ > limits_.maxSymbols)
      fail("the grammar grows beyond " + std::to_string(limits_.maxSymbols) + " symbols (repetition counts are too large)");
  }

  void pushBytes(Alternative& out, const std::string& bytes) {
    count(bytes.size());
    for (char c : bytes) {
      ByteSet s{};
      addByte(s, static_cast<uint8_t>(c));
      out.push_back({GrammarSymbol::Bytes, byteSet(s)});
    }
  }

  // A character class as symbols: one sequence of byte sets when its code points share one shape
  // (ASCII ranges, a single character), else a rule with one alternative per UTF-8 shape.
  void pushClass(Alternative& out, std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negated, size_t at) {
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<uint32_t, uint32_t>> merged;
    for (auto r : ranges) {
      if (!merged.empty() && r.first <= merged.back().second + 1) merged.back().second = std::max(merged.back().second, r.second);
      else merged.push_back(r);
    }
    if (negated) {
      std::vector<std::pair<uint32_t, uint32_t>> inverse;
      uint32_t next = 0;
      for (auto r : merged) {
        if (r.first > next) inverse.push_back({next, r.first - 1});
        next = r.second + 1;
      }
      if (next <= 0x10FFFF) inverse.push_back({next, 0x10FFFF});
      merged.swap(inverse);
    }
    std::vector<ByteRanges> seqs;
    for (auto r : merged) utf8Sequences(r.first, r.second, seqs);
    if (seqs.empty()) failAt(at, "this character class matches no character");
    // Sequences of equal length whose later positions agree become one, their first bytes joined.
    std::map<ByteRanges, ByteSet> byTail;
    for (const ByteRanges& s : seqs) {
      ByteRanges tail(s.begin() + 1, s.end());
      ByteSet& first = byTail[tail];
      for (unsigned b = s[0].first; b <= s[0].second; b++) addByte(first, static_cast<uint8_t>(b));
    }
    std::vector<Alternative> alts;
    for (const auto& [tail, first] : byTail) {
      Alternative a{{GrammarSymbol::Bytes, byteSet(first)}};
      for (auto [lo, hi] : tail) {
        ByteSet s{};
        for (unsigned b = lo; b <= hi; b++) addByte(s, static_cast<uint8_t>(b));
        a.push_back({GrammarSymbol::Bytes, byteSet(s)});
      }
      alts.push_back(std::move(a));
    }
    if (alts.size() == 1) {
      count(alts[0].size());
      out.insert(out.end(), alts[0].begin(), alts[0].end());
      return;
    }
    const uint32_t r = newRule("", at);
    for (Alternative& a : alts) count(a.size() + 1);
    rules_[r] = std::move(alts);
    count(1);
    out.push_back({GrammarSymbol::Rule, r});
  }

  // ─── Grammar ─────────────────────────────────────────────────────────────────────────────────
  void parseRule() {
    const size_t start = pos_;
    const std::string name = parseName();
    const uint32_t id = ruleId(name, start);
    if (defined_[id]) failAt(start, "rule \"" + name + "\" is defined twice");
    defined_[id] = true;
    firstUse_[id] = start;
    skipSpace(false);
    if (src_.substr(pos_, 3) != "::=") fail("expected ::= after the rule name \"" + name + "\", found " + here());
    pos_ += 3;
    skipSpace(true);
    rules_[id] = parseAlternatives(false, 0);
    if (peek() == '\r') pos_ += peek(1) == '\n' ? 2 : 1;
    else if (peek() == '\n') pos_++;
    else if (!atEnd()) fail("expected the end of the line after rule \"" + name + "\", found " + here());
    skipSpace(true);
  }

  std::vector<Alternative> parseAlternatives(bool nested, int depth) {
    std::vector<Alternative> alts;
    alts.push_back(parseSequence(nested, depth));
    while (peek() == '|') {
      pos_++;
      skipSpace(true);
      alts.push_back(parseSequence(nested, depth));
    }
    count(alts.size());
    return alts;
  }

  Alternative parseSequence(bool nested, int depth) {
    Alternative seq;
    size_t lastStart = SIZE_MAX;  // where the last item's symbols begin in seq
    while (!atEnd()) {
      const size_t at = pos_;
      const char c = peek();
      if (c == '"') {
        pos_++;
        lastStart = seq.size();
        std::string bytes;
        while (peek() != '"') {
          if (atEnd()) failAt(at, "this literal has no closing \"");
          encodeUtf8(parseChar(), bytes);
        }
        pos_++;
        pushBytes(seq, bytes);
      } else if (c == '[') {
        pos_++;
        lastStart = seq.size();
        const bool negated = peek() == '^';
        if (negated) pos_++;
        std::vector<std::pair<uint32_t, uint32_t>> ranges;
        while (peek() != ']') {
          if (atEnd()) failAt(at, "this character class has no closing ]");
          const uint32_t lo = parseChar();
          uint32_t hi = lo;
          if (peek() == '-' && peek(1) != ']' && pos_ + 1 < src_.size()) {
            pos_++;
            hi = parseChar();
            if (hi < lo) failAt(at, "a range in this character class ends before it starts");
          }
          ranges.push_back({lo, hi});
        }
        pos_++;
        pushClass(seq, ranges, negated, at);
      } else if (c == '.') {
        pos_++;
        lastStart = seq.size();
        pushClass(seq, {}, true, at);
      } else if (isWordChar(c)) {
        const std::string name = parseName();
        lastStart = seq.size();
        count(1);
        seq.push_back({GrammarSymbol::Rule, ruleId(name, at)});
        // a rule name followed by ::= means this line was a new rule: the sequence must have ended
        const size_t save = pos_;
        skipSpace(false);
        if (src_.substr(pos_, 3) == "::=") failAt(at, "expected the end of the line before rule \"" + name + "\"");
        pos_ = save;
      } else if (c == '(') {
        if (depth >= limits_.maxNesting)
          fail("parentheses nested deeper than " + std::to_string(limits_.maxNesting));
        pos_++;
        skipSpace(true);
        const uint32_t r = newRule("", at);
        rules_[r] = parseAlternatives(true, depth + 1);
        if (peek() != ')') failAt(at, "this ( has no closing )");
        pos_++;
        lastStart = seq.size();
        count(1);
        seq.push_back({GrammarSymbol::Rule, r});
      } else if (c == '*' || c == '+' || c == '?') {
        if (lastStart == SIZE_MAX) fail(std::string("nothing before ") + c + " to repeat");
        pos_++;
        repeat(seq, lastStart, c == '+' ? 1 : 0, c == '?' ? 1 : kUnbounded, at);
        lastStart = SIZE_MAX;
      } else if (c == '{') {
        if (lastStart == SIZE_MAX) fail("nothing before { to repeat");
        pos_++;
        skipSpace(false);
        const uint32_t min = parseCount();
        skipSpace(false);
        uint32_t max = min;
        if (peek() == ',') {
          pos_++;
          skipSpace(false);
          max = peek() == '}' ? kUnbounded : parseCount();
          skipSpace(false);
        }
        if (peek() != '}') fail("expected } to close the repetition, found " + here());
        pos_++;
        if (max < min) failAt(at, "repetition {m,n} with n smaller than m");
        repeat(seq, lastStart, min, max, at);
        lastStart = SIZE_MAX;
      } else {
        break;
      }
      skipSpace(nested);
    }
    return seq;
  }

  // item{min,max} with item = seq[from..]: min copies, then a chain of optional copies (or one
  // rule R ::= item R | ε without a maximum); every recursive reference ends its alternative.
  void repeat(Alternative& seq, size_t from, uint32_t min, uint32_t max, size_t at) {
    Alternative span(seq.begin() + static_cast<long>(from), seq.end());
    seq.resize(from);
    if (span.empty()) return;  // "" repeated is still nothing
    GrammarSymbol item = span[0];
    if (span.size() != 1) {
      const uint32_t r = newRule("", at);
      rules_[r] = {span};
      count(span.size() + 1);
      item = {GrammarSymbol::Rule, r};
    }
    count(min);
    for (uint32_t i = 0; i < min; i++) seq.push_back(item);
    if (max == kUnbounded) {
      const uint32_t r = newRule("", at);
      rules_[r] = {{item, {GrammarSymbol::Rule, r}}, {}};
      count(4);
      seq.push_back({GrammarSymbol::Rule, r});
    } else if (max > min) {
      uint32_t inner = UINT32_MAX;
      for (uint32_t i = 0; i < max - min; i++) {
        const uint32_t r = newRule("", at);
        Alternative a{item};
        if (inner != UINT32_MAX) a.push_back({GrammarSymbol::Rule, inner});
        count(a.size() + 2);
        rules_[r] = {a, {}};
        inner = r;
      }
      count(1);
      seq.push_back({GrammarSymbol::Rule, inner});
    }
  }

  // ─── Checks and layout ───────────────────────────────────────────────────────────────────────
  // A rule that can reach itself before reading a byte would be expanded forever: refuse it, as
  // llama.cpp does, naming the cycle.
  void refuseLeftRecursion() {
    const size_t n = rules_.size();
    std::vector<bool> nullable(n, false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; r++) {
        if (nullable[r]) continue;
        for (const Alternative& a : rules_[r]) {
          bool all = std::all_of(a.begin(), a.end(), [&](const GrammarSymbol& s) { return s.kind == GrammarSymbol::Rule && nullable[s.value]; });
          if (all) {
            nullable[r] = changed = true;
            break;
          }
        }
      }
    }
    std::vector<std::vector<uint32_t>> leftCorner(n);
    for (size_t r = 0; r < n; r++)
      for (const Alternative& a : rules_[r])
        for (const GrammarSymbol& s : a) {
          if (s.kind != GrammarSymbol::Rule) break;
          leftCorner[r].push_back(s.value);
          if (!nullable[s.value]) break;
        }
    // iterative depth-first search; colour 1 = on the current path, 2 = done
    std::vector<uint8_t> colour(n, 0);
    std::vector<uint32_t> parent(n, UINT32_MAX);
    for (size_t start = 0; start < n; start++) {
      if (colour[start]) continue;
      std::vector<std::pair<uint32_t, size_t>> stack{{static_cast<uint32_t>(start), 0}};
      colour[start] = 1;
      while (!stack.empty()) {
        auto& [r, i] = stack.back();
        if (i == leftCorner[r].size()) {
          colour[r] = 2;
          stack.pop_back();
          continue;
        }
        const uint32_t next = leftCorner[r][i++];
        if (colour[next] == 1) reportCycle(stack, next);
        if (colour[next] == 0) {
          colour[next] = 1;
          stack.push_back({next, 0});
        }
      }
    }
  }

  [[noreturn]] void reportCycle(const std::vector<std::pair<uint32_t, size_t>>& stack, uint32_t to) {
    std::string path;
    size_t k = 0;
    while (stack[k].first != to) k++;
    for (size_t j = k; j < stack.size(); j++)
      if (!names_[stack[j].first].empty()) path += names_[stack[j].first] + " -> ";
    uint32_t named = to;
    for (size_t j = k; j < stack.size(); j++)
      if (!names_[stack[j].first].empty()) { named = stack[j].first; break; }
    const std::string who = names_[named].empty() ? "a repetition" : "rule \"" + names_[named] + "\"";
    failAt(firstUse_[named], "left recursion: " + who + " can reach itself before reading a character" +
                                 (path.empty() ? " (a repeated item that may be empty)" : " (" + path + names_[named] + ")"));
  }

  CompiledGrammar layOut(uint32_t root) {
    CompiledGrammar g;
    g.root = root;
    g.ruleNames = names_;
    g.byteSets = sets_;
    g.ruleAlternatives.resize(rules_.size());
    for (size_t r = 0; r < rules_.size(); r++)
      for (const Alternative& a : rules_[r]) {
        g.ruleAlternatives[r].push_back(static_cast<uint32_t>(g.symbols.size()));
        g.symbols.insert(g.symbols.end(), a.begin(), a.end());
        g.symbols.push_back({GrammarSymbol::End, 0});
      }
    // Byte classes: refine the partition of 0..255 by every byte set.
    std::array<uint16_t, 256> cls{};
    uint16_t nClasses = 1;
    for (const ByteSet& s : sets_) {
      std::map<std::pair<uint16_t, bool>, uint16_t> split;
      uint16_t next = 0;
      std::array<uint16_t, 256> refined{};
      for (int b = 0; b < 256; b++) {
        const bool in = (s[b >> 6] >> (b & 63)) & 1;
        auto [it, fresh] = split.emplace(std::make_pair(cls[b], in), next);
        if (fresh) next++;
        refined[b] = it->second;
      }
      cls = refined;
      nClasses = next;
    }
    g.nByteClasses = nClasses;
    g.classByte.assign(nClasses, 0);
    g.classSize.assign(nClasses, 0);
    for (int b = 255; b >= 0; b--) {
      g.byteClass[b] = static_cast<uint8_t>(cls[b]);
      g.classByte[cls[b]] = static_cast<uint8_t>(b);
      g.classSize[cls[b]]++;
    }
    return g;
  }

  std::string_view src_;
  GrammarLimits limits_;
  size_t pos_ = 0;
  size_t symbols_ = 0;
  std::vector<std::vector<Alternative>> rules_;
  std::vector<std::string> names_;
  std::vector<bool> defined_;
  std::vector<size_t> firstUse_;
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<ByteSet> sets_;
  std::map<ByteSet, uint32_t> setIds_;
};

// The fewest bytes from each symbol to the end of its alternative. A rule's shortest sentence is
// the least over its alternatives of their byte sets plus the shortest sentences of the rules they
// name: Knuth's generalisation of Dijkstra (1977) settles the rules in order of that length, an
// alternative once every rule it names is settled, so recursion costs no repeated sweeps.
std::vector<uint32_t> shortestCompletions(const CompiledGrammar& g) {
  constexpr uint32_t kNone = CompiledGrammar::kNoCompletion;
  const size_t nRules = g.ruleAlternatives.size();
  struct Alt {
    uint32_t rule, start, unsettled;
    uint64_t length;  // bytes, plus the settled rules' lengths so far
  };
  std::vector<Alt> alts;
  std::vector<std::vector<uint32_t>> usedBy(nRules);  // rule -> alternatives naming it (once per mention)
  auto empty = [&](uint32_t set) {
    const auto& b = g.byteSets[set];
    return (b[0] | b[1] | b[2] | b[3]) == 0;
  };
  for (uint32_t r = 0; r < nRules; r++)
    for (uint32_t start : g.ruleAlternatives[r]) {
      Alt a{r, start, 0, 0};
      for (uint32_t p = start; g.symbols[p].kind != GrammarSymbol::End; p++) {
        const GrammarSymbol s = g.symbols[p];
        if (s.kind == GrammarSymbol::Rule) {
          a.unsettled++;
          usedBy[s.value].push_back(static_cast<uint32_t>(alts.size()));
        } else {
          a.length += empty(s.value) ? kNone : 1;  // a set no byte matches can never be read
        }
      }
      alts.push_back(a);
    }
  std::vector<uint32_t> ruleLength(nRules, kNone);
  using Entry = std::pair<uint64_t, uint32_t>;  // (length, rule), shortest first
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> ready;
  for (const Alt& a : alts)
    if (a.unsettled == 0 && a.length < kNone) ready.push({a.length, a.rule});
  while (!ready.empty()) {
    const auto [length, r] = ready.top();
    ready.pop();
    if (ruleLength[r] != kNone) continue;
    ruleLength[r] = static_cast<uint32_t>(length);
    for (uint32_t i : usedBy[r]) {
      Alt& a = alts[i];
      a.length += length;
      if (--a.unsettled == 0 && a.length < kNone && ruleLength[a.rule] == kNone) ready.push({a.length, a.rule});
    }
  }
  // Each alternative from its end back: the suffix lengths.
  std::vector<uint32_t> shortest(g.symbols.size(), 0);
  for (const Alt& a : alts) {
    uint32_t end = a.start;
    while (g.symbols[end].kind != GrammarSymbol::End) end++;
    uint64_t rest = 0;
    shortest[end] = 0;
    for (uint32_t p = end; p-- > a.start;) {
      const GrammarSymbol s = g.symbols[p];
      const uint64_t here = s.kind == GrammarSymbol::Rule ? ruleLength[s.value] : empty(s.value) ? kNone : 1;
      rest = std::min<uint64_t>(rest + here, kNone);
      shortest[p] = static_cast<uint32_t>(rest);
    }
  }
  return shortest;
}

}  // namespace

CompiledGrammar compileGbnf(std::string_view text, std::string_view root, const GrammarLimits& limits) {
  CompiledGrammar g = GbnfCompiler(text, limits).run(root);
  g.shortest = shortestCompletions(g);
  return g;
}
