// Errors a user can act on: every failure in aero is an aero::Error whose message names
// the file, field or tensor involved and what was expected.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace aero {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// fail("cannot open ", path, ": ", why) throws aero::Error with the pieces joined.
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace aero

// AERO_CHECK(cond, pieces...): throw aero::Error(pieces...) unless cond holds.
#define AERO_CHECK(cond, ...)                 \
  do {                                        \
    if (!(cond)) ::aero::fail(__VA_ARGS__);   \
  } while (0)
