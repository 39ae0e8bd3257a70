// Pod sandboxes and containers. Children are made with fork(); between fork
// and exec they only make system calls, with every string prepared before the
// fork, so this is safe from a multi-threaded process.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "knetlab/kernel/fd.h"
#include "knetlab/kernel/netns.h"
#include "knetlab/runtime/runtime.h"
#include "knetlab/util/error.h"

extern char** environ;

namespace knl {

namespace {

// What a child tells its parent through the pipe before it execs.
struct Report {
  int kind;   // kPid, or the step that failed
  int value;  // the pid, or errno
};
constexpr int kPid = 0;

// Steps, named in error messages.
constexpr std::array<const char*, 12> kSteps = {"",
                                                "enter network namespace",
                                                "unshare namespaces",
                                                "set hostname",
                                                "make mounts private",
                                                "bind-mount pod file",
                                                "fork",
                                                "mount /proc",
                                                "exec",
                                                "enter namespace",
                                                "open log",
                                                "mount /sys"};

void report(int fd, int kind, int value) {
  Report r{kind, value};
  [[maybe_unused]] auto n = ::write(fd, &r, sizeof r);
}

[[noreturn]] void child_fail(int fd, int step) {
  report(fd, step, errno);
  ::_exit(127);
}

// Reads reports until every writer has closed the pipe; returns the pid.
int collect(int read_fd, const std::string& what, const std::string& netns) {
  int pid = 0;
  Report r;
  for (;;) {
    auto n = ::read(read_fd, &r, sizeof r);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof r)) break;
    if (r.kind == kPid) {
      pid = r.value;
    } else {
      throw errno_error(kSteps[static_cast<size_t>(r.kind)], what, netns, r.value);
    }
  }
  if (pid <= 0) throw SystemError(fmt::format("start {}: no process was started", what), 0);
  return pid;
}

void wait_child(pid_t pid) {
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

struct Pipe {
  Fd read, write;
};
Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw errno_error("create pipe", "", "", errno);
  return {Fd(fds[0]), Fd(fds[1])};
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// The environment of a container or exec: ours, with `path_env` as PATH.
std::vector<std::string> environment(const std::string& path_env) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "PATH=", 5) != 0) env.emplace_back(*e);
  env.push_back("PATH=" + path_env);
  return env;
}

// A program name without '/' is looked up in `path_env`, as a shell would.
std::string resolve_program(const std::string& program, const std::string& path_env) {
  if (program.find('/') != std::string::npos) return program;
  size_t start = 0;
  while (start <= path_env.size()) {
    auto end = path_env.find(':', start);
    if (end == std::string::npos) end = path_env.size();
    auto candidate = path_env.substr(start, end - start) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  throw UserError(fmt::format("program \"{}\" is not on PATH ({})", program, path_env));
}

constexpr std::array<std::pair<const char*, int>, 5> kPodNamespaces = {{
    {"ipc", CLONE_NEWIPC},
    {"uts", CLONE_NEWUTS},
    {"net", CLONE_NEWNET},
    {"pid", CLONE_NEWPID},
    {"mnt", CLONE_NEWNS},  // last: entering it changes the root and cwd
}};

std::vector<Fd> open_pod_namespaces(int pid) {
  std::vector<Fd> fds;
  for (const auto& [name, type] : kPodNamespaces) {
    auto path = fmt::format("/proc/{}/ns/{}", pid, name);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw errno_error("open namespace", path, "", errno);
    fds.push_back(std::move(fd));
  }
  return fds;
}

// In a forked child: join the namespaces opened by open_pod_namespaces().
void enter_pod(const std::vector<Fd>& fds, int report_fd) {
  for (size_t i = 0; i < fds.size(); ++i)
    if (::setns(fds[i].get(), kPodNamespaces[i].second) != 0) child_fail(report_fd, 9);
  if (::chdir("/") != 0) child_fail(report_fd, 9);
}

bool tcp_connects(Ipv4 ip, int port) {
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!sock) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(ip.value);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS)
    return false;
  pollfd p{sock.get(), POLLOUT, 0};
  if (::poll(&p, 1, 200) != 1) return false;
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  return err == 0;
}

bool http_ok(Ipv4 ip, int port, const std::string& path) {
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) return false;
  timeval tv{0, 500000};
  ::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(ip.value);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
  auto request = fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\n\r\n", path, ip.str());
  if (::send(sock.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) return false;
  char buf[64] = {};
  auto n = ::recv(sock.get(), buf, sizeof buf - 1, 0);
  int status = 0;
  return n > 12 && std::sscanf(buf, "HTTP/%*d.%*d %d", &status) == 1 && status >= 200 &&
         status < 400;
}

class ProcessRuntime final : public Runtime {
 public:
  void write_file(const FileSpec& file) override {
    std::error_code ec;
    auto dir = std::filesystem::path(file.path).parent_path();
    std::filesystem::create_directories(dir, ec);
    if (ec) throw errno_error("create directory", dir.string(), "", ec.value());
    std::ofstream out(file.path, std::ios::trunc | std::ios::binary);
    out << file.content;
    if (!out) throw errno_error("write file", file.path, "", errno);
  }

  void remove_tree(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec && ec.value() != ENOENT) throw errno_error("remove", dir, "", ec.value());
  }

  ProcessRecord start_sandbox(const PodPlan& pod, const std::string& pause_program) override {
    auto netns = netns_path(pod.netns);
    auto hostname = pod.name;
    std::array<std::pair<std::string, const char*>, 3> binds = {{
        {pod.dir + "/resolv.conf", "/etc/resolv.conf"},
        {pod.dir + "/hosts", "/etc/hosts"},
        {pod.dir + "/hostname", "/etc/hostname"},
    }};
    std::vector<std::string> args = {"pause"};
    auto argv = c_strings(args);
    char* envp[] = {nullptr};
    const char* program = pause_program.c_str();
    auto pipe = make_pipe();
    Fd netns_fd(::open(netns.c_str(), O_RDONLY | O_CLOEXEC));
    if (!netns_fd) throw errno_error("open network namespace", netns, "", errno);

    pid_t child = ::fork();
    if (child < 0) throw errno_error("fork", "sandbox of pod " + pod.key(), pod.netns, errno);
    if (child == 0) {
      int w = pipe.write.get();
      if (::setns(netns_fd.get(), CLONE_NEWNET) != 0) child_fail(w, 1);
      if (::unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWPID) != 0)
        child_fail(w, 2);
      if (::sethostname(hostname.data(), hostname.size()) != 0) child_fail(w, 3);
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(w, 4);
      // A pod must not hold copies of the lab's other namespace mounts.
      ::umount2(kNetnsDir, MNT_DETACH);
      for (const auto& [from, to] : binds)
        if (::mount(from.c_str(), to, nullptr, MS_BIND, nullptr) != 0) child_fail(w, 5);
      pid_t init = ::fork();
      if (init < 0) child_fail(w, 6);
      if (init == 0) {
        // PID 1 of the pod: its own /proc and a /sys that shows its links.
        if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
          child_fail(w, 7);
        ::umount2("/sys", MNT_DETACH);
        if (::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                    nullptr) != 0)
          child_fail(w, 11);
        ::setsid();
        int null = ::open("/dev/null", O_RDWR);
        ::dup2(null, 0), ::dup2(null, 1), ::dup2(null, 2);
        ::execve(program, argv.data(), envp);
        child_fail(w, 8);
      }
      report(w, kPid, init);
      ::_exit(0);
    }
    pipe.write.reset();
    int pid;
    try {
      pid = collect(pipe.read.get(), "sandbox of pod " + pod.key(), pod.netns);
    } catch (...) {
      wait_child(child);
      throw;
    }
    wait_child(child);
    return {pid, process_start_time(pid)};
  }

  ProcessRecord start_container(const ProcessRecord& sandbox, const ContainerPlan& container,
                                const std::string& path_env) override {
    auto what = fmt::format("container {}", container.name);
    auto args = container.argv;
    args[0] = resolve_program(args[0], path_env);
    auto argv = c_strings(args);
    auto env_strings = environment(path_env);
    auto envp = c_strings(env_strings);
    auto fds = open_pod_namespaces(sandbox.pid);
    Fd log(::open(container.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log) throw errno_error("open log", container.log_path, "", errno);
    auto pipe = make_pipe();

    pid_t child = ::fork();
    if (child < 0) throw errno_error("fork", what, "", errno);
    if (child == 0) {
      int w = pipe.write.get();
      enter_pod(fds, w);
      pid_t process = ::fork();
      if (process < 0) child_fail(w, 6);
      if (process == 0) {
        ::setsid();
        int null = ::open("/dev/null", O_RDONLY);
        ::dup2(null, 0), ::dup2(log.get(), 1), ::dup2(log.get(), 2);
        ::execve(argv[0], argv.data(), envp.data());
        child_fail(w, 8);
      }
      report(w, kPid, process);
      ::_exit(0);
    }
    pipe.write.reset();
    int pid;
    try {
      pid = collect(pipe.read.get(), what, "");
    } catch (...) {
      wait_child(child);
      throw;
    }
    wait_child(child);
    return {pid, process_start_time(pid)};
  }

  void stop(const ProcessRecord& process) override {
    if (process.pid == ::getpid()) return;  // a failing deploy's own supervisor record
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, process.pid, 0)));
    if (!pidfd) return;  // gone already
    // The pid is ours only if the process it names started when ours did.
    if (process_start_time(process.pid) != process.start_time) return;
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) != 0 && errno != ESRCH)
      throw errno_error("kill process", std::to_string(process.pid), "", errno);
    pollfd p{pidfd.get(), POLLIN, 0};
    while (::poll(&p, 1, 5000) < 0 && errno == EINTR) {
    }
  }

  bool alive(const ProcessRecord& process) override { return process_alive(process); }

  void stop_namespace_members(const std::vector<std::string>& netns) override {
    std::set<std::pair<dev_t, ino_t>> targets;
    for (const auto& name : netns) {
      struct stat st;
      if (::stat(netns_path(name).c_str(), &st) == 0) targets.emplace(st.st_dev, st.st_ino);
    }
    if (targets.empty()) return;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const auto& name = entry.path().filename().string();
      if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
      struct stat st;
      if (::stat((entry.path() / "ns/net").c_str(), &st) != 0) continue;
      if (!targets.count({st.st_dev, st.st_ino})) continue;
      int pid = std::stoi(name);
      stop({pid, process_start_time(pid)});
    }
  }

  void wait_ready(const std::vector<const PodPlan*>& pods,
                  std::chrono::steady_clock::time_point deadline) override {
    std::map<std::string, std::vector<const PodPlan*>> by_node;
    for (const auto* pod : pods) by_node[pod->node].push_back(pod);
    for (const auto& [node, list] : by_node) {
      if (list.empty()) continue;
      // Probe from the node, as the kubelet does: it also proves the pod is wired.
      auto fd = open_netns(node_netns_of(*list.front()));
      run_in_netns(fd.get(), [&] {
        for (const auto* pod : list) {
          for (const auto& c : pod->containers) {
            for (;;) {
              bool ready = true;
              for (int port : c.tcp_ports) ready = ready && tcp_connects(pod->ip, port);
              if (ready && c.readiness) {
                ready = c.readiness->http_get.empty()
                            ? tcp_connects(pod->ip, c.readiness->port)
                            : http_ok(pod->ip, c.readiness->port, c.readiness->http_get);
              }
              if (ready) break;
              if (std::chrono::steady_clock::now() > deadline)
                throw SystemError(fmt::format("pod {} container {} is not ready: its ports do not "
                                              "answer (see its log {})",
                                              pod->key(), c.name, c.log_path),
                                  ETIMEDOUT);
              std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
          }
        }
      });
    }
  }

 private:
  static std::string node_netns_of(const PodPlan& pod) {
    if (pod.host_network) return pod.netns;
    // Pod netns names are knl-<lab>-p-...; the node's is knl-<lab>-n-<node>.
    auto lab_end = pod.netns.find("-p-");
    return pod.netns.substr(0, lab_end) + "-n-" + pod.node;
  }
};

}  // namespace

std::unique_ptr<Runtime> make_process_runtime() {
  return std::make_unique<ProcessRuntime>();
}

int exec_in(const ExecTarget& target, const std::vector<std::string>& command,
            const std::string& path_env) {
  auto args = command;
  auto env_strings = environment(path_env);
  args[0] = resolve_program(args[0], path_env);
  auto argv = c_strings(args);
  auto envp = c_strings(env_strings);
  std::vector<Fd> fds;
  Fd netns;
  if (target.pid)
    fds = open_pod_namespaces(target.pid);
  else
    netns = open_netns(target.netns);
  auto pipe = make_pipe();

  struct sigaction ignore {
  }, old_int{}, old_quit{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old_int);
  ::sigaction(SIGQUIT, &ignore, &old_quit);
  pid_t child = ::fork();
  if (child < 0) throw errno_error("fork", "exec", target.netns, errno);
  if (child == 0) {
    int w = pipe.write.get();
    if (target.pid)
      enter_pod(fds, w);
    else if (::setns(netns.get(), CLONE_NEWNET) != 0)
      child_fail(w, 1);
    pid_t process = ::fork();
    if (process < 0) child_fail(w, 6);
    if (process == 0) {
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGQUIT, SIG_DFL);
      ::execve(argv[0], argv.data(), envp.data());
      child_fail(w, 8);
    }
    ::close(w);
    int status = 0;
    while (::waitpid(process, &status, 0) < 0 && errno == EINTR) {
    }
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  pipe.write.reset();
  Report r;
  ssize_t n = ::read(pipe.read.get(), &r, sizeof r);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  if (n == static_cast<ssize_t>(sizeof r) && r.kind != kPid)
    throw errno_error(kSteps[static_cast<size_t>(r.kind)], command[0], target.netns, r.value);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace knl
