#pragma once
// The per-lab supervisor: a child subreaper that every sandbox and container
// of the lab descends from, so their exits are reaped at once (whatever the
// machine's PID 1 does), noted in the lab's events log and handed to the
// lab's controller; it also serves the controller's requests (scale, delete)
// on a unix socket in the lab's run folder.

#include <chrono>
#include <string>

#include "knetlab/kernel/fd.h"

namespace knl {

/// What the supervisor drives. Exceptions thrown by exited() and tick() are
/// logged and survived.
class SupervisorHooks {
 public:
  virtual ~SupervisorHooks() = default;
  virtual void exited(int pid, int status) = 0;
  /// After the exits reaped at once were each passed to exited().
  virtual void exits_reaped() = 0;
  /// About once a second.
  virtual void tick() = 0;
  /// One request line in, one answer line out.
  virtual std::string request(const std::string& line) = 0;
  /// True once the lab is being destroyed: exits are then only reaped, with
  /// no event and no hook, so that the supervisor leaves the CPUs to the
  /// exiting processes instead of rewriting the lab's record after each.
  virtual bool quiesced() const = 0;
};

/// Makes the calling process the subreaper of everything it starts from now on.
void become_subreaper();

/// A listening unix socket at `path` (replacing a stale one).
Fd listen_control_socket(const std::string& path);

/// Sends `line` to the supervisor listening at `path` and returns its answer;
/// SystemError when it does not answer within `timeout_ms`.
std::string ask_supervisor(const std::string& path, const std::string& line,
                           int timeout_ms = 600000);

/// Kills every child of the calling process, the supervisor, whose children
/// are all the lab's (sandboxes, containers, daemons, the mount template),
/// and reaps them, for at most `within`; returns how many it killed. A
/// child not yet reaped keeps its pid, so no start time need be checked.
size_t stop_children(std::chrono::milliseconds within);

/// Appends one timestamped line to the events log at `path`.
void append_event(const std::string& path, const std::string& text);

/// Detaches from the terminal and runs until SIGTERM or SIGKILL; never returns.
/// SIGCHLD must have been blocked before the process started any thread, or
/// another thread may take it.
[[noreturn]] void run_supervisor(const std::string& events_path, Fd control,
                                 SupervisorHooks& hooks);

}  // namespace knl
