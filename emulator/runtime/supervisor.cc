#include "knetlab/runtime/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <vector>

#include "knetlab/util/error.h"

namespace knl {

namespace {

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw SystemError(fmt::format("socket path {} is too long", path), ENAMETOOLONG);
  path.copy(addr.sun_path, path.size());
  return addr;
}

// Reads up to the first newline (or EOF) within `timeout_ms`.
std::string read_line(int fd, int timeout_ms) {
  std::string line;
  char buf[4096];
  while (line.find('\n') == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) break;
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
  return line;
}

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    auto n = ::send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

void become_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    throw errno_error("become child subreaper", "supervisor", "", errno);
}

Fd listen_control_socket(const std::string& path) {
  auto addr = unix_address(path);
  ::unlink(path.c_str());
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw errno_error("create socket", path, "", errno);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd.get(), 16) != 0)
    throw errno_error("listen on", path, "", errno);
  return fd;
}

std::string ask_supervisor(const std::string& path, const std::string& line, int timeout_ms) {
  auto addr = unix_address(path);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw errno_error("create socket", path, "", errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw SystemError(fmt::format("the lab's supervisor does not answer on {}: {} (is the lab "
                                  "deployed? `knetlab destroy` and deploy it again)",
                                  path, std::strerror(errno)),
                      errno);
  write_all(fd.get(), line + "\n");
  auto answer = read_line(fd.get(), timeout_ms);
  if (answer.empty())
    throw SystemError(fmt::format("the lab's supervisor closed {} without an answer", path), 0);
  return answer;
}

size_t stop_children(std::chrono::milliseconds within) {
  // Each thread's own: a child is its cloning thread's, and goes to another
  // thread of the process when that one ends.
  std::vector<pid_t> children;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "children");
    for (pid_t pid = 0; in >> pid;) children.push_back(pid);
  }
  {
    // Every kill is sent before any killed process runs (a real-time
    // thread, for this loop only): processes that die together share the
    // RCU grace periods their mount namespaces wait for.
    sched_param realtime{};
    realtime.sched_priority = 1;
    bool raised = ::sched_setscheduler(0, SCHED_FIFO, &realtime) == 0;
    for (pid_t pid : children) ::kill(pid, SIGKILL);
    if (raised) {
      sched_param normal{};
      ::sched_setscheduler(0, SCHED_OTHER, &normal);
    }
  }
  // SIGCHLD is blocked (see run_supervisor): waited for, not handled. A pod's
  // PID 1 exits only once its containers are reaped, so all are.
  sigset_t child_exits;
  sigemptyset(&child_exits);
  sigaddset(&child_exits, SIGCHLD);
  const auto deadline = std::chrono::steady_clock::now() + within;
  for (;;) {
    pid_t pid = 0;
    while ((pid = ::waitpid(-1, nullptr, WNOHANG)) > 0) {
    }
    if (pid < 0) break;  // ECHILD: none left
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    timespec wait{static_cast<time_t>(left.count() / 1'000'000'000),
                  static_cast<long>(left.count() % 1'000'000'000)};
    ::sigtimedwait(&child_exits, nullptr, &wait);
  }
  return children.size();
}

void append_event(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  auto line = fmt::format("{} {}\n", std::time(nullptr), text);
  [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
  ::close(fd);
}

void run_supervisor(const std::string& events_path, Fd control, SupervisorHooks& hooks) {
  ::prctl(PR_SET_NAME, "knetlab-sup");
  ::setsid();
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ::dup2(null, 0), ::dup2(null, 1), ::dup2(null, 2);
  [[maybe_unused]] int rc = ::chdir("/");
  // The caller blocked SIGCHLD before it started any thread (see supervisor.h).
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  int signals = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  auto guarded = [&](const char* what, auto&& work) {
    try {
      work();
    } catch (const std::exception& e) {
      append_event(events_path, fmt::format("error in {}: {}", what, e.what()));
    }
  };
  auto next_tick = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (;;) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
                    next_tick - std::chrono::steady_clock::now())
                    .count();
    pollfd fds[2] = {{signals, POLLIN, 0}, {control.get(), POLLIN, 0}};
    ::poll(fds, 2, static_cast<int>(std::max<long>(wait, 0)));
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(signals, &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) ::_exit(0);
        if (info.ssi_signo != SIGCHLD) continue;
        int status = 0;
        for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
          if (hooks.quiesced()) continue;
          append_event(
              events_path,
              fmt::format("exit pid={} {}={}", pid, WIFEXITED(status) ? "status" : "signal",
                          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)));
          guarded("exit handling", [&] { hooks.exited(pid, status); });
        }
        if (!hooks.quiesced()) guarded("exit handling", [&] { hooks.exits_reaped(); });
        break;
      }
    }
    if (fds[1].revents & POLLIN) {
      Fd client(::accept4(control.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (client) {
        auto line = read_line(client.get(), 5000);
        write_all(client.get(), hooks.request(line) + "\n");
      }
    }
    if (std::chrono::steady_clock::now() >= next_tick && !hooks.quiesced()) {
      guarded("periodic work", [&] { hooks.tick(); });
      next_tick = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    }
  }
}

}  // namespace knl
