// Pod sandboxes and containers: the process runtime of a lab.

#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "knetlab/kernel/fd.h"
#include "knetlab/kernel/netns.h"
#include "knetlab/runtime/runtime.h"
#include "knetlab/util/error.h"

extern char** environ;

#include "children.h"

namespace knl {

namespace {

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
    // Its folder is made only when the file cannot be, so that the common
    // case is one open, write and close on the thread that wires the pods.
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
    a.die_with = ::getpid();
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
    // other CPU.
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

  bool signal(const ProcessRecord& process, int signal) override {
    return process_alive(process) && ::kill(process.pid, signal) == 0;
  }

  size_t children(const ProcessRecord& process) override {
    if (!process_alive(process)) return 0;
    std::ifstream in(fmt::format("/proc/{0}/task/{0}/children", process.pid));
    size_t n = 0;
    for (int pid; in >> pid;) ++n;
    return n;
  }

  bool http_answers(const PodPlan& pod, int port, const std::string& path) override {
    auto fd = open_netns(pod.node_netns);
    bool ok = false;
    run_in_netns(fd.get(), [&] { ok = http_ok(pod.ip, port, path); });
    return ok;
  }

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
    // With none, all run, and /proc need not be read for each.
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
                throw SystemError(
                    fmt::format("pod {} container {} ({}) exited; the end of its "
                                "log:{}",
                                pod->key(), c.name, c.argv.front(), log_tail(c.log_path)),
                    ESRCH);
              if (container_ready(*pod, c)) break;
              if (std::chrono::steady_clock::now() > deadline)
                throw SystemError(
                    fmt::format("pod {} container {} ({}) is not ready: its ports do "
                                "not answer; the end of its log:{}",
                                pod->key(), c.name, c.argv.front(), log_tail(c.log_path)),
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
  // The last lines of a container's log, each on a line of its own: a failed
  // deploy removes the log with the pod.
  static std::string log_tail(const std::string& path) {
    std::ifstream in(path);
    std::deque<std::string> lines;
    for (std::string line; std::getline(in, line);) {
      lines.push_back(line);
      if (lines.size() > 5) lines.pop_front();
    }
    std::string out;
    for (const auto& line : lines) out += "\n  " + line;
    return out.empty() ? " (empty)" : out;
  }

  static bool container_ready(const PodPlan& pod, const ContainerPlan& c) {
    for (int port : c.tcp_ports)
      if (!tcp_connects(pod.ip, port)) return false;
    return readiness_passes(pod, c);
  }

  // The container's readiness probe, from the calling thread's namespace.
  static bool readiness_passes(const PodPlan& pod, const ContainerPlan& c) {
    if (!c.readiness) return true;
    if (!c.readiness->dns_name.empty())
      return dns_answers(pod.ip, c.readiness->port, c.readiness->dns_name);
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

}  // namespace knl
