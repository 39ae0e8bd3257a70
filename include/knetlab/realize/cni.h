#pragma once
// cni = "external": the lab's CNI plugins, run as a container runtime runs
// them (libcni, CNI spec 1.0). Each runs in its pod's node's network
// namespace with the node's own /var/lib/cni and /run/flannel bound over the
// machine's, so that one node's leases are never another's. ADD runs the
// chain in order with prevResult, DEL in reverse with the cached result,
// CHECK in order. A pod's attachment is cached, in libcni's format, before
// its ADD runs: destroy finds it through the journal and runs its DEL even
// after a crash.

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "knetlab/kernel/programs.h"
#include "knetlab/plan/plan.h"

namespace knl {

/// The mount points the plugins' state is bound over.
inline constexpr const char* kCniStateDir = "/var/lib/cni";
inline constexpr const char* kFlannelRunDir = "/run/flannel";

/// One plugin's verdict on a CHECK.
struct CniVerdict {
  std::string type;
  bool ok = false;
  std::string message;  // the error's msg and details, or stderr
};

class CniPlugins {
 public:
  /// A plugin that runs longer than `timeout` is killed and fails (its DEL
  /// and CHECK too: the attachment keeps it).
  explicit CniPlugins(Programs& programs,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : programs_(programs), timeout_(timeout) {}

  /// Finds every plugin of the conflists in `bin_dirs` and asks each its
  /// versions (VERSION); keeps, per conflist, its own cniVersion when every
  /// plugin supports it and the highest one they all support otherwise.
  /// UserError naming the plugin, its place in the chain and the folders when
  /// a binary is missing, or the versions when none is common. Called before
  /// any pod is made. Returns the version kept for each conflist.
  std::vector<std::string> prepare(const std::vector<std::string>& conflists,
                                   const std::vector<std::string>& bin_dirs);

  /// The conflist of `node` of the lab whose files are in `run_dir`, as
  /// deploy rendered it in the node's CNI folder; SystemError when it cannot
  /// be read.
  static std::string conflist(const std::string& run_dir, const std::string& node);
  /// The cache file of a pod's attachment (libcni's place for it, in its
  /// node's /var/lib/cni).
  static std::string cache_path(const std::string& run_dir, const std::string& lab,
                                const std::string& node, const std::string& pod_key);
  static std::string cache_path(const Plan& plan, const PodPlan& pod) {
    return cache_path(plan.run_dir, plan.lab, pod.node, pod.key());
  }

  /// ADD for `pod`: writes its cache file (then `cached` is called with its
  /// path, for the journal), runs the chain and returns the address the
  /// result gives eth0. On a plugin's failure runs DEL over the whole chain
  /// and throws UserError naming the pod, the plugin type and its place, the
  /// exit status, the error's code, msg and details and stderr's tail.
  Ipv4 add(const Plan& plan, const PodPlan& pod,
           const std::function<void(const std::string&)>& cached);

  /// DEL of the attachment cached at `cache_path`, in reverse chain order
  /// with the cached result; removes the cache file. Nothing when the file is
  /// gone (already deleted). Runs every plugin and then throws UserError for
  /// the first that failed.
  static void del(Programs& programs, const std::string& cache_path);

  /// CHECK of the attachment cached at `cache_path`, each plugin in order
  /// with the cached result; stops at the first that fails, as libcni does.
  static std::vector<CniVerdict> check(Programs& programs, const std::string& cache_path);

  /// The attachment cached at `cache_path` (libcni's cniCacheV1 record);
  /// SystemError when it cannot be read.
  static nlohmann::json cached(const std::string& cache_path);

 private:
  Programs& programs_;
  std::chrono::milliseconds timeout_;
  std::map<std::string, std::string> versions_;  // conflist text -> the cniVersion used
};

}  // namespace knl
