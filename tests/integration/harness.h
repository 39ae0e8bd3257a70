#pragma once
// What the root integration tests share: running the real knetlab binary and
// other programs, a Lab fixture whose destructor always destroys, and a
// snapshot of the machine's own network namespace.

#include <gtest/gtest.h>
#include <sys/types.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace knl::test {

struct Result {
  int status = -1;  // exit status; -1 when it had to be killed
  std::string out, err;
};

/// Runs argv with no stdin; kills it after `timeout_seconds`.
Result run(const std::vector<std::string>& argv, int timeout_seconds = 120);
/// Runs the knetlab binary of this build.
Result knetlab(const std::vector<std::string>& args, int timeout_seconds = 120);
/// Starts `knetlab deploy FILE` with its output discarded, without waiting
/// for it; returns its pid, or -1 when fork failed.
pid_t deploy_in_background(const std::string& file);
/// `knetlab exec --lab LAB TARGET -- CMD...`, stdout without its last newline.
Result exec(const std::string& lab, const std::string& target,
            const std::vector<std::string>& command);

std::string read_text(const std::string& path);
std::string source_file(const std::string& relative);

/// Skips the test (with a message) unless it runs as root.
#define KNL_REQUIRE_ROOT() \
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: run the integration tests with sudo"

/// Everything observable about the machine's own network namespace.
std::string host_network_snapshot();

/// True when nothing of lab `name` is left: no namespace, run folder or mount.
::testing::AssertionResult nothing_left(const std::string& name);

/// A deployed lab, destroyed when it goes out of scope (even when the test
/// fails), after which nothing of it may be left.
class Lab {
 public:
  /// Deploys `topology` after renaming its lab to `name`.
  Lab(const std::string& name, std::string topology);
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  const std::string& name() const { return name_; }
  const Result& deployed() const { return deploy_; }
  bool ok() const { return deploy_.status == 0; }
  nlohmann::json inspect() const;
  Result exec(const std::string& target, const std::vector<std::string>& command) const {
    return test::exec(name_, target, command);
  }
  /// Pod name -> IP.
  std::map<std::string, std::string> pod_ips() const;
  /// The output of `curl -s -m 3 ARGS…` run in `from`; a curl that fails
  /// fails the test.
  std::string curl(const std::vector<std::string>& args,
                   const std::string& from = "host/client") const;
  /// `n` runs of `curl -s -m 3 CURL_ARGS` from host/client in one shell:
  /// how many times each answer came back.
  std::map<std::string, int> curl_many(int n, const std::string& curl_args) const;

 private:
  std::string name_, file_;
  Result deploy_;
};

/// A topology file's text with its lab renamed.
std::string renamed(std::string topology, const std::string& name);

}  // namespace knl::test
