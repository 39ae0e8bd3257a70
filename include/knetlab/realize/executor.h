#pragma once
// Applies a Plan to the kernel and undoes it. The executor is the only code
// that calls the Kernel and Runtime interfaces for a lab; it records every
// creation in the Journal first, and on any failure undoes everything it did
// before rethrowing, so a failed deploy leaves nothing behind.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "knetlab/kernel/kernel.h"
#include "knetlab/realize/journal.h"
#include "knetlab/runtime/runtime.h"

namespace knl {

struct ExecutorOptions {
  std::chrono::milliseconds ready_timeout{30000};
  /// Called as work advances: (phase, done, total). May be empty.
  std::function<void(std::string_view, size_t, size_t)> progress;
};

class Executor {
 public:
  Executor(Kernel& kernel, Runtime& runtime, Journal& journal, ExecutorOptions options)
      : kernel_(kernel), runtime_(runtime), journal_(journal), options_(std::move(options)) {}

  /// Builds everything in `plan`; returns the processes of every pod (by
  /// PodPlan::key()). On failure, undoes all and rethrows.
  std::map<std::string, PodProcesses> deploy(const Plan& plan);

  /// Builds the pods of `fragment` (plan_added_pod) in a running lab whose
  /// pods' mount namespaces copy `mount_template`. On failure undoes only
  /// what it did.
  std::map<std::string, PodProcesses> add_pods(const Plan& fragment,
                                               const ProcessRecord& mount_template);
  /// Stops a pod's processes and removes its namespace and files.
  void remove_pod(const PodPlan& pod, const PodProcesses& processes);

  /// Undoes what `entries` record, newest first. Idempotent; keeps going past
  /// failures and throws the first one at the end.
  static void undo(const std::vector<JournalEntry>& entries, Kernel& kernel, Runtime& runtime);

 private:
  std::map<std::string, PodProcesses> build(const Plan& plan,
                                            std::optional<ProcessRecord> existing_template);
  /// Journals `namespaces`, then creates them and runs `inside` as
  /// Kernel::create_netns does; cancels the entries of those not created.
  void create_namespaces(const std::vector<NetnsSpec>& namespaces,
                         const std::function<void(size_t)>& inside);
  void report(std::string_view phase, size_t done, size_t total) const {
    if (options_.progress) options_.progress(phase, done, total);
  }

  Kernel& kernel_;
  Runtime& runtime_;
  Journal& journal_;
  ExecutorOptions options_;
};

}  // namespace knl
