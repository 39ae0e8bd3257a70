#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "knetlab/kernel/fd.h"
#include "knetlab/runtime/runtime.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {
// The fields of /proc/PID/stat after the command name, which may hold spaces.
std::vector<std::string> stat_fields(int pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text;
  std::getline(in, text);
  std::vector<std::string> fields;
  auto close = text.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream rest(text.substr(close + 2));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}
}  // namespace

uint64_t process_start_time(int pid) {
  auto fields = stat_fields(pid);
  // Field 22 of stat is starttime; fields[0] here is field 3 (state).
  return fields.size() > 19 ? std::stoull(fields[19]) : 0;
}

bool process_alive(const ProcessRecord& p) {
  auto fields = stat_fields(p.pid);
  return fields.size() > 19 && std::stoull(fields[19]) == p.start_time && fields[0] != "Z";
}

}  // namespace knl
