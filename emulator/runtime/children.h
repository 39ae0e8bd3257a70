#pragma once
// How the runtime makes processes: children cloned with CLONE_VM | CLONE_VFORK
// into a pod's or a lab's namespaces, which make system calls only between
// clone and exec, and the readiness probes. Private to emulator/runtime/.

#include <sched.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "knetlab/kernel/fd.h"
#include "knetlab/runtime/runtime.h"

namespace knl {

/// waitid()'s id type for a pidfd (P_PIDFD, Linux 5.4).
inline constexpr int kPidfdId = 3;

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
  // Template: the process whose end takes the child with it (PR_SET_PDEATHSIG).
  pid_t die_with = 0;
  int failed_step = 0, error = 0;
};

/// Reaps `pid`, retrying on EINTR.
void wait_child(pid_t pid);
/// argv-style pointers into `strings`, ending in nullptr.
std::vector<char*> c_strings(std::vector<std::string>& strings);
/// The environment of a container or exec: ours, with `path_env` as PATH.
std::vector<std::string> environment(const std::string& path_env);
/// A program name without '/' is looked up in `path_env`, as a shell would;
/// UserError when it is nowhere.
std::string resolve_program(const std::string& program, const std::string& path_env);
/// A pidfd of `pid`; invalid (errno set) when there is no such process.
Fd open_pidfd(int pid);
/// A pidfd of a pod's sandbox, checked to be that process and not a later
/// one with its pid; SystemError naming `what` otherwise.
Fd open_sandbox(const ProcessRecord& sandbox, const std::string& what);
/// Moves the calling thread into the network, IPC and UTS namespaces of the
/// sandbox `pidfd`, and its children into the sandbox's PID namespace.
void enter_pod(int pidfd, const std::string& what);

/// The children's entry points, each given its ChildArgs.
int sandbox_child(void* arg);
int template_child(void* arg);
int daemon_child(void* arg);
int container_child(void* arg);

/// Whether a child of this process has exited and was not reaped yet: it
/// stays a zombie, to be reaped later.
bool a_child_exited();
/// Runs `child` as a new process with `flags`; returns it once it has
/// exec'd, with its pidfd in `pidfd` if given, or throws naming the step
/// that failed.
ProcessRecord clone_child(int (*child)(void*), ChildArgs& args, int flags, const std::string& what,
                          const std::string& netns, Fd* pidfd = nullptr);

/// Readiness probes, from the calling thread's network namespace: a TCP
/// connection accepted, an HTTP GET answered with 2xx or 3xx, a DNS query.
bool tcp_connects(Ipv4 ip, int port);
bool http_ok(Ipv4 ip, int port, const std::string& path);
/// A DNS query for `name` (A) over UDP answered with NOERROR and an answer.
bool dns_answers(Ipv4 ip, int port, const std::string& name);

}  // namespace knl
