#pragma once
// What check's probes share: which ports a pod answers "hostname" on, the
// netexec call that asks, and how its outcome reads. Private to
// emulator/cli/.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "knetlab/cli/lab.h"
#include "knetlab/kernel/programs.h"

namespace knl::cli {

/// The TCP (HTTP GET /hostname) and UDP ("hostname") ports on which the
/// pod's netexec containers answer with its name, from their arguments.
std::vector<std::pair<Protocol, int>> served_ports(const PodRecord& pod);

/// The call that asks `address` (IP:PORT) for its pod's name from `netns`,
/// waiting at most `timeout` seconds.
ProgramCall hostname_call(const Install& install, const std::string& netns, Protocol protocol,
                          const std::string& address, double timeout = 1);

/// What answered: "pod NAME", "refused", "timeout", or the error's text.
std::string hostname_answer(const ProgramResult& result);

/// Runs `calls`, at most `at_once` at a time; the results in their order.
std::vector<ProgramResult> run_probes(const std::vector<ProgramCall>& calls, size_t at_once);

/// Results of run_probes_again: each call's last result, and how many calls
/// were asked again because their first answer was not the expected one.
struct ProbeResults {
  std::vector<ProgramResult> results;
  size_t asked_again = 0;
};
/// Runs `calls` as run_probes does, then once more each call whose result
/// `expected(index, result)` rejects, keeping the second result. One lost
/// packet or one slow process on a busy machine must not read as a policy or
/// a route that is wrong; the upstream e2e tests probe a second time too.
ProbeResults run_probes_again(const std::vector<ProgramCall>& calls, size_t at_once,
                              const std::function<bool(size_t, const ProgramResult&)>& expected);

/// One probe as a JUnit test case: `failure` empty when it passed.
struct JunitCase {
  std::string name, failure;
};
/// Writes `cases` to `path` as one JUnit XML test suite named `suite`, as CI
/// dashboards read it; SystemError when the file cannot be written.
void write_junit(const std::string& path, const std::string& suite,
                 const std::vector<JunitCase>& cases);

}  // namespace knl::cli
