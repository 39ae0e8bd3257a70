// Pod sandboxes and containers. Children are made with fork(); between fork
// and exec they only make system calls, with every string prepared before the
// fork, so this is safe from a multi-threaded process.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/personality.h>
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
#include <mutex>
#include <set>
#include <thread>

#include "knetlab/kernel/fd.h"
#include "knetlab/kernel/netns.h"
#include "knetlab/runtime/runtime.h"
#include "knetlab/util/error.h"

extern char** environ;

namespace knl {

namespace {

// waitid()'s id type for a pidfd (P_PIDFD, Linux 5.4).
constexpr int kPidfdId = 3;

// What a child was doing when it failed, named in the error message.
enum Step {
  kEnterNetns = 1,
  kUnshare,
  kHostname,
  kPrivate,
  kBind,
  kProc,
  kExec,
  kEnterNs,
  kSys,
  kEnterTemplate,
  kHideNetns,
  kAffinity
};
constexpr std::array<const char*, 13> kSteps = {"",
                                                "enter network namespace",
                                                "unshare namespaces",
                                                "set hostname",
                                                "make mounts private",
                                                "bind-mount pod file",
                                                "mount /proc",
                                                "exec",
                                                "enter namespace",
                                                "mount /sys",
                                                "enter mount template",
                                                "hide /run/netns",
                                                "restore CPU affinity"};

void wait_child(pid_t pid) {
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
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

// A pidfd of `pid`; invalid (errno set) when there is no such process.
Fd open_pidfd(int pid) {
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

// A pidfd of a pod's sandbox, checked to be that process and not a later one
// with its pid.
Fd open_sandbox(const ProcessRecord& sandbox, const std::string& what) {
  Fd pidfd = open_pidfd(sandbox.pid);
  if (!pidfd) throw errno_error("open sandbox process", what, "", errno);
  if (process_start_time(sandbox.pid) != sandbox.start_time)
    throw errno_error("open sandbox process", what, "", ESRCH);
  return pidfd;
}

// Moves the calling thread into the network, IPC and UTS namespaces of the
// sandbox `pidfd`, and its children into the sandbox's PID namespace: one
// system call, where opening the five namespaces by path took 0.06 ms.
void enter_pod(int pidfd, const std::string& what) {
  if (::setns(pidfd, CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID) != 0)
    throw errno_error("enter the namespaces of", what, "", errno);
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

// A child made by clone(CLONE_VM | CLONE_VFORK) shares our memory until it
// execs, and we are stopped meanwhile: it reads its arguments from here and
// writes here which step failed. It makes system calls only.
struct ChildArgs {
  int netns_fd = -1;     // sandbox: the pod's network namespace
  int template_fd = -1;  // sandbox: the mount namespace to copy
  int sandbox_fd = -1;   // container: a pidfd of the sandbox, whose mounts to join
  int stdin_fd = -1, stdout_fd = -1;
  const char* hostname = nullptr;
  std::vector<std::pair<const char*, const char*>> binds;
  const char* program = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  // The program is pause, linked near the top of the address space: exec'd
  // without address randomization its code, stack and vDSO share page-table
  // pages (see images/pause/pause.cc).
  bool fixed_layout = false;
  // Set when start_pods keeps its threads to a CPU each: the child sets these,
  // the CPUs the deploy may use, as its own before it execs.
  const cpu_set_t* affinity = nullptr;
  int failed_step = 0, error = 0;
};

[[noreturn]] void child_failed(ChildArgs* a, int step) {
  a->failed_step = step;
  a->error = errno;
  ::_exit(127);
}

// Execs with the signal state a fresh process expects: nothing blocked and
// nothing ignored (our SIGCHLD mask and exec's ignored SIGINT would survive).
[[noreturn]] void child_exec(ChildArgs* a) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP}) ::signal(sig, SIG_DFL);
  if (a->affinity && ::sched_setaffinity(0, sizeof *a->affinity, a->affinity) != 0)
    child_failed(a, kAffinity);
  if (a->fixed_layout && ::personality(ADDR_NO_RANDOMIZE) == -1) child_failed(a, kExec);
  ::execve(a->program, a->argv, a->envp);
  child_failed(a, kExec);
}

// A child with its own stdio also gets its own session; one without (exec)
// keeps the terminal's, so that Ctrl-C reaches it.
void child_stdio(ChildArgs* a) {
  if (a->stdout_fd < 0) return;
  ::dup2(a->stdin_fd, 0);
  ::dup2(a->stdout_fd, 1);
  ::dup2(a->stdout_fd, 2);
  ::setsid();
}

// The template has no /sys: a sysfs mounted from a network namespace shows
// that namespace's interfaces, read-only as in a container.
void mount_sysfs(ChildArgs* a) {
  if (::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, nullptr) != 0)
    child_failed(a, kSys);
}

// PID 1 of a new PID namespace (and new UTS and IPC ones, from clone's flags).
int sandbox_child(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  if (::setns(a->netns_fd, CLONE_NEWNET) != 0) child_failed(a, kEnterNetns);
  // A copy of the small template, not of the machine's mount table.
  if (::setns(a->template_fd, CLONE_NEWNS) != 0) child_failed(a, kEnterTemplate);
  if (::unshare(CLONE_NEWNS) != 0) child_failed(a, kUnshare);
  if (::sethostname(a->hostname, std::strlen(a->hostname)) != 0) child_failed(a, kHostname);
  for (const auto& [from, to] : a->binds)
    if (::mount(from, to, nullptr, MS_BIND, nullptr) != 0) child_failed(a, kBind);
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    child_failed(a, kProc);
  mount_sysfs(a);
  child_stdio(a);
  child_exec(a);
}

// The holder of the pod mount template.
int template_child(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  if (::unshare(CLONE_NEWNS) != 0) child_failed(a, kUnshare);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_failed(a, kPrivate);
  ::umount2(kNetnsDir, MNT_DETACH);
  // Under those mounts are the files they were bound to, not namespaces:
  // `ip link` in a pod opened each to name a veth's peer and printed "Peer
  // netns reference is invalid" once per file. A pod sees an empty folder,
  // as a container, whose /run is its own, does.
  if (::mount("knetlab", kNetnsDir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0755,size=4k") != 0)
    child_failed(a, kHideNetns);
  // The machine's /sys and the cgroup mounts under it go once, here: each pod
  // detaching its copy cost 0.2 ms (an expedited RCU grace period).
  ::umount2("/sys", MNT_DETACH);
  child_stdio(a);
  child_exec(a);
}

// A lab daemon, born in its network namespace: in a copy of the mount
// template, with its bind mounts, as its own session.
int daemon_child(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  if (::setns(a->template_fd, CLONE_NEWNS) != 0) child_failed(a, kEnterTemplate);
  if (::unshare(CLONE_NEWNS) != 0) child_failed(a, kUnshare);
  for (const auto& [from, to] : a->binds)
    if (::mount(from, to, nullptr, MS_BIND, nullptr) != 0) child_failed(a, kBind);
  mount_sysfs(a);
  if (::chdir("/") != 0) child_failed(a, kEnterNs);
  child_stdio(a);
  child_exec(a);
}

// Born in the namespaces the calling thread entered (a pod's PID, network,
// UTS and IPC ones, or a node's network namespace); joins the pod's mount
// namespace, if any, and execs.
int container_child(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  if (a->sandbox_fd >= 0 && (::setns(a->sandbox_fd, CLONE_NEWNS) != 0 || ::chdir("/") != 0))
    child_failed(a, kEnterNs);
  child_stdio(a);
  child_exec(a);
}

// Whether a child of this process has exited and was not reaped yet: it
// stays a zombie, to be reaped later.
bool a_child_exited() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0;
}

// CLOCK_BOOTTIME in the unit of /proc/PID/stat's start time (clock ticks).
uint64_t boottime_ticks() {
  static const uint64_t ns_per_tick = 1'000'000'000 / static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  timespec now{};
  ::clock_gettime(CLOCK_BOOTTIME, &now);
  return (static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(now.tv_nsec)) /
         ns_per_tick;
}

// Runs `child` as a new process with `flags`; returns it once it has exec'd,
// or throws naming the step that failed.
ProcessRecord clone_child(int (*child)(void*), ChildArgs& args, int flags, const std::string& what,
                          const std::string& netns, Fd* pidfd = nullptr) {
  constexpr size_t kStack = 64 * 1024;
  thread_local std::vector<char> stack(kStack);
  // The stack grows down from its 16-byte aligned top.
  auto top = reinterpret_cast<uintptr_t>(stack.data() + kStack) & ~uintptr_t{15};
  // The kernel stamps the child's start time during clone: when no tick
  // passed meanwhile, that tick is it, and /proc need not be read (reading
  // it cost 0.075 ms, twice per pod).
  const auto before = boottime_ticks();
  int fd = -1;
  int pid =
      ::clone(child, reinterpret_cast<void*>(top),
              flags | CLONE_VM | CLONE_VFORK | SIGCHLD | (pidfd ? CLONE_PIDFD : 0), &args, &fd);
  const auto after = boottime_ticks();
  if (pid < 0) throw errno_error("clone", what, netns, errno);
  if (pidfd) pidfd->reset(fd);
  if (args.failed_step) {
    wait_child(pid);
    throw errno_error(kSteps[static_cast<size_t>(args.failed_step)], what, netns, args.error);
  }
  return {pid, before == after ? before : process_start_time(pid)};
}

class ProcessRuntime final : public Runtime {
 public:
  explicit ProcessRuntime(RuntimeOptions options)
      : options_(std::move(options)),
        env_(environment(options_.path_env)),
        envp_(c_strings(env_)),
        null_(::open("/dev/null", O_RDWR | O_CLOEXEC)) {
    if (!null_) throw errno_error("open", "/dev/null", "", errno);
  }

  void write_file(const FileSpec& file) override {
    // Its folder is made only when the file cannot be: a look at the folder
    // first and an ofstream cost 1-1.2 ms more for 100 pods' files, written
    // by the thread that wires the pods.
    constexpr int kFlags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    Fd out(::open(file.path.c_str(), kFlags, 0644));
    if (!out && errno == ENOENT) {
      std::error_code ec;
      auto dir = std::filesystem::path(file.path).parent_path();
      std::filesystem::create_directories(dir, ec);
      if (ec) throw errno_error("create directory", dir.string(), "", ec.value());
      out.reset(::open(file.path.c_str(), kFlags, 0644));
    }
    if (!out) throw errno_error("write file", file.path, "", errno);
    for (size_t done = 0; done < file.content.size();) {
      auto n = ::write(out.get(), file.content.data() + done, file.content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw errno_error("write file", file.path, "", errno);
      done += static_cast<size_t>(n);
    }
  }

  void remove_tree(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec && ec.value() != ENOENT) throw errno_error("remove", dir, "", ec.value());
  }

  void mount_tmpfs(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw errno_error("create directory", dir, "", ec.value());
    if (::mount("knetlab", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
      throw errno_error("mount tmpfs on", dir, "", errno);
  }

  void unmount(const std::string& dir) override {
    if (::umount2(dir.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
      throw errno_error("unmount", dir, "", errno);
  }

  ProcessRecord start_mount_template() override {
    // The template holder: a pause in a mount namespace made private, with
    // the machine's /run/netns mounts and /sys detached. Pods and daemons
    // copy it, which costs a few mounts instead of one per network namespace
    // on the machine.
    std::vector<std::string> args = {"pause"};
    auto argv = c_strings(args);
    char* envp[] = {nullptr};
    ChildArgs a;
    a.stdin_fd = a.stdout_fd = null_.get();
    set_program(a, options_.pause.c_str());
    a.argv = argv.data();
    a.envp = envp;
    return clone_child(template_child, a, 0, "mount template", "");
  }

  void start_pods(const std::vector<const PodPlan*>& pods, const ProcessRecord& mount_template,
                  const Started& started) override {
    auto template_path = fmt::format("/proc/{}/ns/mnt", mount_template.pid);
    Fd mnt(::open(template_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!mnt) throw errno_error("open mount template", template_path, "", errno);
    Fd home_pid(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    if (!home_pid) throw errno_error("open", "/proc/self/ns/pid", "", errno);
    std::mutex report;
    // One thread per core, each starting whole pods: the threads enter the
    // pods' namespaces themselves, and clone from one core waits less for
    // the other's exec to finish. Each thread keeps to a CPU of its own, and
    // so does each child until it execs: the parent waits for that (vfork),
    // and the child runs where it was, warm, instead of being woken on the
    // other CPU. 100 pods: 18-21 -> 14-15 ms (medians of 15).
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    const bool pin =
        ::sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 1;
    // The children get the deploy's CPUs back whether or not a pin took:
    // pinning only saves time.
    const cpu_set_t* restore = pin ? &allowed : nullptr;
    auto keep_to_a_cpu = [&](size_t thread) {
      if (!pin) return;
      cpu_set_t one;
      CPU_ZERO(&one);
      for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &allowed) &&
            static_cast<size_t>(seen++) == thread % static_cast<size_t>(CPU_COUNT(&allowed)))
          CPU_SET(cpu, &one);
      ::sched_setaffinity(0, sizeof one, &one);
    };
    run_on_own_threads(
        pods.size(),
        [&](size_t i) {
          const auto& pod = *pods[i];
          // Back from the previous pod's PID namespace, which would be the
          // parent of this pod's.
          if (::setns(home_pid.get(), CLONE_NEWPID) != 0)
            throw errno_error("leave the PID namespace of the pod before", pod.key(), "", errno);
          Fd pidfd;
          auto sandbox = start_sandbox(pod, mnt.get(), pidfd, restore);
          {
            std::lock_guard lock(report);
            started(pod, "", sandbox);
          }
          enter_pod(pidfd.get(), "pod " + pod.key());
          for (const auto& c : pod.containers) {
            auto process = start_container(pidfd.get(), c, restore);
            std::lock_guard lock(report);
            started(pod, c.name, process);
          }
        },
        keep_to_a_cpu);
  }

  ProcessRecord start_container(const ProcessRecord& sandbox,
                                const ContainerPlan& container) override {
    auto what = "container " + container.name;
    auto pidfd = open_sandbox(sandbox, what);
    ProcessRecord process;
    run_on_own_threads(1, [&](size_t) {
      enter_pod(pidfd.get(), what);
      process = start_container(pidfd.get(), container);
    });
    return process;
  }

  ProcessRecord start_daemon(const DaemonPlan& daemon,
                             const ProcessRecord& mount_template) override {
    const auto* user = ::getpwnam(daemon.user.c_str());
    if (!user)
      throw SystemError(fmt::format("start {}: no user \"{}\" on this machine (the frr package "
                                    "creates it: apt-get install frr)",
                                    daemon.name, daemon.user),
                        ENOENT);
    // The daemon drops to `user`: its folder is where it writes.
    std::vector<std::string> dirs = {daemon.dir};
    for (const auto& [from, to] : daemon.binds) dirs.push_back(from);
    for (const auto& dir : dirs) {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (ec) throw errno_error("create directory", dir, daemon.netns, ec.value());
      if (::chown(dir.c_str(), user->pw_uid, user->pw_gid) != 0)
        throw errno_error("chown", dir, daemon.netns, errno);
    }
    Fd log(::open(daemon.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log) throw errno_error("open log", daemon.log_path, "", errno);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!daemon.wait_for.empty() && !std::filesystem::exists(daemon.wait_for)) {
      if (std::chrono::steady_clock::now() > deadline)
        throw SystemError(fmt::format("start {}: {} did not appear in 10 s (see the logs in {})",
                                      daemon.name, daemon.wait_for, daemon.dir),
                          ETIMEDOUT);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    auto template_path = fmt::format("/proc/{}/ns/mnt", mount_template.pid);
    Fd mnt(::open(template_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!mnt) throw errno_error("open mount template", template_path, "", errno);
    auto args = daemon.argv;
    auto argv = c_strings(args);
    ChildArgs a;
    a.template_fd = mnt.get();
    a.stdin_fd = null_.get();
    a.stdout_fd = log.get();
    for (const auto& [from, to] : daemon.binds) a.binds.emplace_back(from.c_str(), to.c_str());
    set_program(a, argv[0]);
    a.argv = argv.data();
    a.envp = envp_.data();
    ProcessRecord started;
    auto netns = open_netns(daemon.netns);
    run_in_netns(netns.get(),
                 [&] { started = clone_child(daemon_child, a, 0, daemon.name, daemon.netns); });
    return started;
  }

  void stop(const std::vector<ProcessRecord>& processes) override {
    std::vector<Fd> pidfds;
    for (const auto& process : processes) {
      if (process.pid == ::getpid()) continue;  // a failing deploy's own supervisor record
      Fd pidfd = open_pidfd(process.pid);
      if (!pidfd) continue;  // gone already
      // The pid is ours only if the process it names started when ours did.
      if (process_start_time(process.pid) != process.start_time) continue;
      if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) != 0 && errno != ESRCH)
        throw errno_error("kill process", std::to_string(process.pid), "", errno);
      pidfds.push_back(std::move(pidfd));
    }
    // A pidfd is readable once its process has exited. Our own children
    // (during a deploy's rollback) are also reaped: a pod's PID 1 cannot
    // finish exiting while its containers are zombies. The wait sleeps until
    // a process exits: checking every process each millisecond took CPU time
    // from the exiting ones.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::vector<pollfd> waiting;
    for (const auto& pidfd : pidfds) waiting.push_back({pidfd.get(), POLLIN, 0});
    while (!waiting.empty()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      int ready = ::poll(waiting.data(), waiting.size(), static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;  // Ctrl-C during a rollback
      if (ready < 0) throw errno_error("wait for processes to exit", "", "", errno);
      std::erase_if(waiting, [](const pollfd& p) {
        if (!p.revents) return false;
        siginfo_t info{};
        ::waitid(static_cast<idtype_t>(kPidfdId), static_cast<id_t>(p.fd), &info,
                 WEXITED | WNOHANG);
        return true;
      });
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
    std::vector<ProcessRecord> members;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const auto& name = entry.path().filename().string();
      if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
      struct stat st;
      if (::stat((entry.path() / "ns/net").c_str(), &st) != 0) continue;
      if (!targets.count({st.st_dev, st.st_ino})) continue;
      int pid = std::stoi(name);
      members.push_back({pid, process_start_time(pid)});
    }
    stop(members);
  }

  void wait_ready(const std::vector<const PodPlan*>& pods,
                  const std::map<std::string, PodProcesses>& processes,
                  std::chrono::steady_clock::time_point deadline) override {
    std::map<std::string, std::vector<const PodPlan*>> by_node;
    for (const auto* pod : pods) by_node[pod->node].push_back(pod);
    // Every container is a child of this process, and nothing reaps one
    // while pods are started and waited for: one that exited is a zombie.
    // With none, all run, and /proc need not be read for each (100 pods'
    // readiness: 0.8-1.3 ms).
    const bool none_exited = !a_child_exited();
    for (const auto& [node, list] : by_node) {
      // Probe from the node, as the kubelet does: it also proves the pod is wired.
      auto fd = open_netns(list.front()->node_netns);
      run_in_netns(fd.get(), [&] {
        for (const auto* pod : list) {
          const auto& running = processes.at(pod->key()).containers;
          for (const auto& c : pod->containers) {
            for (bool first = true;; first = false) {
              if ((!first || !none_exited) && !process_alive(running.at(c.name)))
                throw SystemError(fmt::format("pod {} container {} exited (its log: {})",
                                              pod->key(), c.name, c.log_path),
                                  ESRCH);
              if (container_ready(*pod, c)) break;
              if (std::chrono::steady_clock::now() > deadline)
                throw SystemError(fmt::format("pod {} container {} is not ready: its ports do not "
                                              "answer (its log: {})",
                                              pod->key(), c.name, c.log_path),
                                  ETIMEDOUT);
              std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
          }
        }
      });
    }
  }

  bool probe_readiness(const PodPlan& pod, const ContainerPlan& c) override {
    if (!c.readiness) return true;
    auto fd = open_netns(pod.node_netns);
    bool ok = false;
    run_in_netns(fd.get(), [&] { ok = readiness_passes(pod, c); });
    return ok;
  }

 private:
  static bool container_ready(const PodPlan& pod, const ContainerPlan& c) {
    for (int port : c.tcp_ports)
      if (!tcp_connects(pod.ip, port)) return false;
    return readiness_passes(pod, c);
  }

  // The container's readiness probe, from the calling thread's namespace.
  static bool readiness_passes(const PodPlan& pod, const ContainerPlan& c) {
    if (!c.readiness) return true;
    return c.readiness->http_get.empty()
               ? tcp_connects(pod.ip, c.readiness->port)
               : http_ok(pod.ip, c.readiness->port, c.readiness->http_get);
  }

  // The pause process of `pod` (PID 1 of a new PID namespace, in new UTS and
  // IPC ones, joining the pod's network namespace and a copy of the mount
  // template), started from the calling thread; `pidfd` is set to it. It
  // execs with `affinity`, if given, as its CPUs.
  ProcessRecord start_sandbox(const PodPlan& pod, int template_fd, Fd& pidfd,
                              const cpu_set_t* affinity) {
    auto what = "sandbox of pod " + pod.key();
    Fd netns = open_netns(pod.netns);
    std::vector<std::string> files = {pod.dir + "/resolv.conf", pod.dir + "/hosts",
                                      pod.dir + "/hostname"};
    std::vector<std::string> args = {"pause"};
    auto argv = c_strings(args);
    char* envp[] = {nullptr};
    ChildArgs a;
    a.netns_fd = netns.get();
    a.template_fd = template_fd;
    a.stdin_fd = a.stdout_fd = null_.get();
    a.hostname = pod.name.c_str();
    a.binds = {{files[0].c_str(), "/etc/resolv.conf"},
               {files[1].c_str(), "/etc/hosts"},
               {files[2].c_str(), "/etc/hostname"}};
    set_program(a, options_.pause.c_str());
    a.argv = argv.data();
    a.envp = envp;
    a.affinity = affinity;
    return clone_child(sandbox_child, a, CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC, what,
                       pod.netns, &pidfd);
  }

  // `container`, born from the calling thread, which entered the pod of the
  // sandbox `pidfd`; with `affinity` as for start_sandbox.
  ProcessRecord start_container(int pidfd, const ContainerPlan& container,
                                const cpu_set_t* affinity = nullptr) {
    auto what = "container " + container.name;
    Fd log(::open(container.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log) throw errno_error("open log", container.log_path, "", errno);
    auto args = container.argv;
    args[0] = resolve_program(args[0], options_.path_env);
    auto argv = c_strings(args);
    ChildArgs a;
    a.sandbox_fd = pidfd;
    a.stdin_fd = null_.get();
    a.stdout_fd = log.get();
    a.affinity = affinity;
    set_program(a, argv[0]);
    a.argv = argv.data();
    a.envp = envp_.data();
    return clone_child(container_child, a, 0, what, "");
  }

  // Every child this runtime starts with pause execs it without address
  // randomization (ChildArgs::fixed_layout).
  void set_program(ChildArgs& a, const char* program) const {
    a.program = program;
    a.fixed_layout = program == options_.pause;
  }

  RuntimeOptions options_;
  std::vector<std::string> env_;
  std::vector<char*> envp_;  // into env_, prepared once for every child
  Fd null_;
};

}  // namespace

std::unique_ptr<Runtime> make_process_runtime(const RuntimeOptions& options) {
  return std::make_unique<ProcessRuntime>(options);
}

int exec_in(const ExecTarget& target, const std::vector<std::string>& command,
            const std::string& path_env) {
  auto args = command;
  args[0] = resolve_program(args[0], path_env);
  auto env = environment(path_env);
  auto argv = c_strings(args);
  auto envp = c_strings(env);
  Fd pod, netns;
  if (target.pid) {
    pod = open_pidfd(target.pid);
    if (!pod)
      throw errno_error("open pod process", std::to_string(target.pid), target.netns, errno);
  } else {
    netns = open_netns(target.netns);
  }
  ChildArgs a;
  a.sandbox_fd = pod.get();
  a.program = argv[0];
  a.argv = argv.data();
  a.envp = envp.data();

  struct sigaction ignore {
  }, old_int{}, old_quit{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old_int);
  ::sigaction(SIGQUIT, &ignore, &old_quit);
  int pid = 0;
  try {
    if (target.pid) {
      run_on_own_threads(1, [&](size_t) {
        enter_pod(pod.get(), "pod " + target.netns);
        pid = clone_child(container_child, a, 0, command[0], target.netns).pid;
      });
    } else {
      run_in_netns(netns.get(),
                   [&] { pid = clone_child(container_child, a, 0, command[0], target.netns).pid; });
    }
  } catch (...) {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    throw;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace knl
