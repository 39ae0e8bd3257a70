// The runtime's children: cloned into namespaces, making system calls only
// until they exec, with every string prepared before the clone, which makes
// this safe from a multi-threaded process.

#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "knetlab/kernel/fd.h"
#include "knetlab/kernel/netns.h"
#include "knetlab/runtime/runtime.h"
#include "knetlab/util/error.h"

extern char** environ;

#include "children.h"

namespace knl {

namespace {

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

}  // namespace

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
// sandbox `pidfd`, and its children into the sandbox's PID namespace, with
// one system call rather than one open and setns per namespace.
void enter_pod(int pidfd, const std::string& what) {
  if (::setns(pidfd, CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID) != 0)
    throw errno_error("enter the namespaces of", what, "", errno);
}

namespace {

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

}  // namespace

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
  // Killed with the deploy before the journal names it, the template would
  // be no lab's: it goes with the process that started it (the lab's
  // supervisor, which ends last at destroy).
  if (a->die_with) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != a->die_with) ::_exit(1);
  }
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
  // The machine's /sys and the cgroup mounts under it go once, here, rather
  // than from every pod's copy (each detach waits for an RCU grace period).
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

namespace {

// CLOCK_BOOTTIME in the unit of /proc/PID/stat's start time (clock ticks).
uint64_t boottime_ticks() {
  static const uint64_t ns_per_tick = 1'000'000'000 / static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  timespec now{};
  ::clock_gettime(CLOCK_BOOTTIME, &now);
  return (static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(now.tv_nsec)) /
         ns_per_tick;
}

}  // namespace

// Runs `child` as a new process with `flags`; returns it once it has exec'd,
// or throws naming the step that failed.
ProcessRecord clone_child(int (*child)(void*), ChildArgs& args, int flags, const std::string& what,
                          const std::string& netns, Fd* pidfd) {
  constexpr size_t kStack = 64 * 1024;
  thread_local std::vector<char> stack(kStack);
  // The stack grows down from its 16-byte aligned top.
  auto top = reinterpret_cast<uintptr_t>(stack.data() + kStack) & ~uintptr_t{15};
  // The kernel stamps the child's start time during clone: when no tick
  // passed meanwhile, that tick is it, and /proc need not be read.
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
