#include <fmt/format.h>

#include <cstring>

#include "knetlab/util/error.h"

namespace knl {

SystemError errno_error(const std::string& operation, const std::string& object,
                        const std::string& netns, int err) {
  auto where = netns.empty() ? std::string() : fmt::format(" in netns {}", netns);
  return SystemError(
      fmt::format("{} {}{}: {} (errno {})", operation, object, where, std::strerror(err), err),
      err);
}

}  // namespace knl
