#pragma once
// The per-lab supervisor: a child subreaper that every sandbox and container
// of the lab descends from, so their exits are reaped at once (whatever the
// machine's PID 1 does) and noted in the lab's events log.

#include <string>

namespace knl {

/// Makes the calling process the subreaper of everything it starts from now on.
void become_subreaper();

/// Detaches from the terminal and reaps until SIGTERM or SIGKILL; never returns.
/// SIGCHLD must have been blocked before the process started any thread, or
/// another thread may take it.
/// Each exit is appended to `events_path`.
[[noreturn]] void run_supervisor(const std::string& events_path);

}  // namespace knl
