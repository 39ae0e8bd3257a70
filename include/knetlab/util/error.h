#pragma once
// Errors carry what the user needs to act: a UserError (exit status 1) names
// the file:line:column or the object and what to write instead; a SystemError
// (exit status 2) names the operation, the object, the namespace and the errno
// text. Every layer throws these two and nothing else escapes main().

#include <stdexcept>
#include <string>

namespace knl {

/// A mistake in what the user gave us: a topology file, a target, a flag.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The kernel or a program refused: the message holds operation, object,
/// namespace and the error text; code() is the errno (or 0).
class SystemError : public std::runtime_error {
 public:
  SystemError(const std::string& what, int code) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

/// Builds "OPERATION OBJECT in netns NS: strerror(err)".
[[nodiscard]] SystemError errno_error(const std::string& operation, const std::string& object,
                                      const std::string& netns, int err);

}  // namespace knl
