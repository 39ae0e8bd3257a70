#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "knetlab/kernel/fd.h"
#include "knetlab/runtime/runtime.h"

namespace knl {

namespace {
// The state (field 3) and start time (field 22) of /proc/PID/stat; false when
// there is no such process. Read with one system call and no stream: stop()
// and the deploy's readiness wait read it for every process of a lab.
bool stat_of(int pid, char& state, uint64_t& start_time) {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char text[1024];
  auto n = ::read(fd.get(), text, sizeof text - 1);
  if (n <= 0) return false;
  text[n] = '\0';
  // The command name (field 2) is in parentheses and may hold spaces.
  const char* p = std::strrchr(text, ')');
  if (!p || p[1] != ' ' || !p[2]) return false;
  state = p[2];
  p += 2;
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (!p) return false;
    ++p;
  }
  char* end = nullptr;
  start_time = std::strtoull(p, &end, 10);
  return end != p;
}
}  // namespace

uint64_t process_start_time(int pid) {
  char state = 0;
  uint64_t start = 0;
  return stat_of(pid, state, start) ? start : 0;
}

bool process_alive(const ProcessRecord& p) {
  char state = 0;
  uint64_t start = 0;
  return stat_of(p.pid, state, start) && start == p.start_time && state != 'Z';
}

}  // namespace knl
