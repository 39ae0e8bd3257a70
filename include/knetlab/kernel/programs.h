#pragma once
// The programs a lab runs where the kernel interface does not reach:
// iptables-restore, conntrack and vtysh (and nginx reloads, DNS updates and
// CNI plugins). Each runs inside one of the lab's network namespaces. Tests
// use a recording fake (tests/unit/fakes.h).

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace knl {

/// One run of a program.
struct ProgramCall {
  std::string netns;  // the network namespace it runs in (a name under /run/netns); empty: ours
  std::vector<std::string> argv;  // argv[0] is looked up on PATH
  std::string input;              // its standard input
  std::vector<std::string> env;   // NAME=VALUE, added to knetlab's own environment
  /// (source, target) folders bound in a mount namespace of the program's
  /// own, which sees the machine's mounts otherwise; every target must exist.
  std::vector<std::pair<std::string, std::string>> binds;
  /// Killed (SIGKILL) when it runs longer; zero: no limit.
  std::chrono::milliseconds timeout{0};
  bool split_stderr = false;  // stderr to ProgramResult::errors instead of `output`
};

/// The outcome of a program run to completion.
struct ProgramResult {
  int status = 0;      // exit status, or 128 + signal; 127 when it could not be executed
  std::string output;  // stdout and stderr together (stdout only with split_stderr)
  std::string errors;  // stderr, with split_stderr
  bool timed_out = false;
};

class Programs {
 public:
  virtual ~Programs() = default;
  /// Runs `call` to completion. Throws SystemError only when no process
  /// could be made (the namespace is missing, fork failed); a program that
  /// fails returns its status.
  virtual ProgramResult run(const ProgramCall& call) = 0;
  /// Runs every call at once and waits for all; the results in the calls'
  /// order. Throws as run() does, once all have ended.
  virtual std::vector<ProgramResult> run_all(const std::vector<ProgramCall>& calls) = 0;
};

/// The real programs of the machine.
std::unique_ptr<Programs> make_programs();

/// Runs argv (found on PATH) inside the network namespace `netns` with
/// `input` on its stdin, and waits for it; as Programs::run.
ProgramResult run_program(const std::string& netns, const std::vector<std::string>& argv,
                          const std::string& input = "");
/// Runs `call` as Programs::run does on the machine.
ProgramResult run_program(const ProgramCall& call);

}  // namespace knl
