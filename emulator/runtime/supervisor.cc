#include "knetlab/runtime/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <ctime>

#include "knetlab/util/error.h"

namespace knl {

void become_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    throw errno_error("become child subreaper", "supervisor", "", errno);
}

void run_supervisor(const std::string& events_path) {
  ::prctl(PR_SET_NAME, "knetlab-sup");
  ::setsid();
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ::dup2(null, 0), ::dup2(null, 1), ::dup2(null, 2);
  [[maybe_unused]] int rc = ::chdir("/");
  int events = ::open(events_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  // The caller blocked SIGCHLD before it started any thread (see supervisor.h).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  for (;;) {
    int sig = 0;
    if (::sigwait(&set, &sig) != 0) continue;
    if (sig == SIGTERM || sig == SIGINT) ::_exit(0);
    int status = 0;
    for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
      auto line = fmt::format("{} exit pid={} {}={}\n", std::time(nullptr), pid,
                              WIFEXITED(status) ? "status" : "signal",
                              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      if (events >= 0) [[maybe_unused]]
        auto n = ::write(events, line.data(), line.size());
    }
  }
}

}  // namespace knl
