#pragma once
// Processes of a lab: pod sandboxes (the pause process that holds a pod's
// namespaces), containers joined to them, files they read, and readiness.
// The executor drives it through this interface; tests use a recording fake.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "knetlab/plan/plan.h"

namespace knl {

/// A process we started. The start time (in clock ticks since boot, from
/// /proc/PID/stat) tells it apart from a later process that reuses the pid.
struct ProcessRecord {
  int pid = 0;
  uint64_t start_time = 0;
  auto operator<=>(const ProcessRecord&) const = default;
};

/// Start time of `pid`, or 0 when no such process runs.
uint64_t process_start_time(int pid);
/// True when the process recorded in `p` still runs (not a zombie).
bool process_alive(const ProcessRecord& p);

/// The processes of one running pod.
struct PodProcesses {
  ProcessRecord sandbox;
  std::map<std::string, ProcessRecord> containers;
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  virtual void write_file(const FileSpec& file) = 0;
  virtual void remove_tree(const std::string& dir) = 0;
  /// Mounts a tmpfs at `dir` (created if missing), in the machine's mount
  /// namespace, where the lab's processes find it too.
  virtual void mount_tmpfs(const std::string& dir) = 0;
  /// Detaches what is mounted at `dir`; nothing mounted there is fine.
  virtual void unmount(const std::string& dir) = 0;
  /// Starts the process holding the lab's template mount namespace, from
  /// which every pod's mount namespace is copied.
  virtual ProcessRecord start_mount_template() = 0;
  /// Called for each process start_pods started, right after it did; the
  /// container name is empty for the sandbox. Calls come one at a time, from
  /// any thread.
  using Started = std::function<void(const PodPlan& pod, const std::string& container,
                                     const ProcessRecord& process)>;
  /// Starts every pod, several at a time: first its pause process (PID 1 of
  /// the pod's PID namespace, in its network namespace, with its own UTS,
  /// IPC and mount namespaces), then its containers joined to it. After the
  /// first failure no further pod starts; it is thrown once the pods under
  /// way are done.
  virtual void start_pods(const std::vector<const PodPlan*>& pods,
                          const ProcessRecord& mount_template, const Started& started) = 0;
  /// Starts `container` joined to the namespaces of `sandbox`.
  virtual ProcessRecord start_container(const ProcessRecord& sandbox,
                                        const ContainerPlan& container) = 0;
  /// Starts a lab daemon (FRR's zebra or bgpd) as DaemonPlan says, its
  /// mount namespace copied from `mount_template`.
  virtual ProcessRecord start_daemon(const DaemonPlan& daemon,
                                     const ProcessRecord& mount_template) = 0;
  /// Kills the processes, then waits until they are gone; vanished ones are
  /// fine. All are signalled before any is waited for: a pod's PID 1 cannot
  /// finish exiting before the other processes of its PID namespace are reaped.
  virtual void stop(const std::vector<ProcessRecord>& processes) = 0;
  /// True while the process runs (not exited, not a zombie, pid not reused).
  virtual bool alive(const ProcessRecord& process) = 0;
  /// Sends `signal` to `process`; false when it no longer runs.
  virtual bool signal(const ProcessRecord& process, int signal) = 0;
  /// How many child processes `process` has; 0 when it no longer runs.
  virtual size_t children(const ProcessRecord& process) = 0;
  /// Whether GET http://POD_IP:PORT/PATH, sent from the pod's node, answers
  /// with a 2xx or 3xx status within half a second.
  virtual bool http_answers(const PodPlan& pod, int port, const std::string& path) = 0;
  /// Kills every process whose network namespace is one of `netns` (those a
  /// crash kept out of the journal, and those a user started with exec).
  virtual void stop_namespace_members(const std::vector<std::string>& netns) = 0;
  /// Waits until every pod's containers run and answer their probes; throws
  /// SystemError naming the first pod whose container exited or is not ready
  /// by `deadline`.
  /// Runs `container`'s readiness probe once, from the pod's node as the
  /// kubelet does; true without a probe.
  virtual bool probe_readiness(const PodPlan& pod, const ContainerPlan& container) = 0;
  virtual void wait_ready(const std::vector<const PodPlan*>& pods,
                          const std::map<std::string, PodProcesses>& processes,
                          std::chrono::steady_clock::time_point deadline) = 0;
};

/// Where the programs are and the PATH that containers get.
struct RuntimeOptions {
  std::string pause;
  std::string path_env;
};

std::unique_ptr<Runtime> make_process_runtime(const RuntimeOptions& options);

/// Which namespaces `exec` enters.
struct ExecTarget {
  std::string netns;  // a name under /run/netns (nodes, hosts), or empty
  int pid = 0;        // a process whose namespaces to join (pods), or 0
};

/// Runs argv in the target with this process's stdio; returns its exit status
/// (128 + signal when killed).
int exec_in(const ExecTarget& target, const std::vector<std::string>& argv,
            const std::string& path_env);

}  // namespace knl
