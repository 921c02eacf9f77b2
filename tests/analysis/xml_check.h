// A small XML well-formedness check for the SVG tests: balanced tags, quoted attributes,
// known entities only. Returns "" if well formed, else what is wrong and where.
#pragma once
#include <string>
#include <vector>

namespace aero::test {

inline std::string xml_problem(const std::string& s) {
  std::vector<std::string> stack;
  size_t i = 0, roots = 0;
  auto bad = [&](const std::string& what) { return what + " at offset " + std::to_string(i); };
  while (i < s.size()) {
    if (s[i] == '&') {
      size_t e = s.find(';', i);
      if (e == std::string::npos) return bad("unterminated entity");
      std::string ent = s.substr(i, e - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;")
        return bad("unknown entity " + ent);
      i = e + 1;
      continue;
    }
    if (s[i] == '>') return bad("stray '>'");
    if (s[i] != '<') {
      ++i;
      continue;
    }
    if (s.compare(i, 5, "<?xml") == 0) {
      size_t e = s.find("?>", i);
      if (e == std::string::npos) return bad("unterminated declaration");
      i = e + 2;
      continue;
    }
    size_t e = i + 1;
    char quote = 0;
    for (; e < s.size(); ++e) {
      if (quote) {
        if (s[e] == quote) quote = 0;
        else if (s[e] == '<') return bad("'<' inside an attribute value");
      } else if (s[e] == '"' || s[e] == '\'') {
        quote = s[e];
      } else if (s[e] == '>') {
        break;
      }
    }
    if (e >= s.size()) return bad("unterminated tag");
    std::string tag = s.substr(i + 1, e - i - 1);
    i = e + 1;
    if (tag.empty()) return bad("empty tag");
    if (tag[0] == '/') {
      std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) return bad("closing </" + name + "> does not match");
      stack.pop_back();
      continue;
    }
    bool self = tag.back() == '/';
    std::string name = tag.substr(0, tag.find_first_of(" \t\n/"));
    // attributes: name="value" pairs
    size_t p = name.size();
    std::string rest = tag.substr(p, tag.size() - p - (self ? 1 : 0));
    size_t k = 0;
    while (k < rest.size()) {
      if (isspace(static_cast<unsigned char>(rest[k]))) {
        ++k;
        continue;
      }
      size_t eq = rest.find('=', k);
      if (eq == std::string::npos || eq + 1 >= rest.size() || (rest[eq + 1] != '"' && rest[eq + 1] != '\''))
        return bad("unquoted attribute in <" + name + ">");
      size_t close = rest.find(rest[eq + 1], eq + 2);
      if (close == std::string::npos) return bad("unterminated attribute in <" + name + ">");
      k = close + 1;
    }
    if (stack.empty()) ++roots;
    if (!self) stack.push_back(name);
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  if (roots != 1) return "expected one root element, found " + std::to_string(roots);
  return "";
}

inline size_t count_of(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + needle.size())) ++n;
  return n;
}

}  // namespace aero::test
