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
#include "knetlab/kernel/programs.h"
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
  Executor(Kernel& kernel, Runtime& runtime, Programs& programs, Journal& journal,
           ExecutorOptions options)
      : kernel_(kernel),
        runtime_(runtime),
        programs_(programs),
        journal_(journal),
        options_(std::move(options)) {}

  /// Builds everything in `plan`; returns the processes of every pod (by
  /// PodPlan::key()). With cni = "external" each pod's address is its
  /// plugins' and is set in `plan` (and in the pod's hosts file) before its
  /// containers start. On failure, undoes all and rethrows.
  std::map<std::string, PodProcesses> deploy(Plan& plan);

  /// Builds the pods of `fragment` (plan_added_pod) in a running lab whose
  /// pods' mount namespaces copy `mount_template`, as deploy does. On failure
  /// undoes only what it did.
  std::map<std::string, PodProcesses> add_pods(Plan& fragment, const ProcessRecord& mount_template);
  /// Stops a pod's processes, runs its CNI DEL (cni = "external") and removes
  /// its namespace and files.
  void remove_pod(const Plan& plan, const PodPlan& pod, const PodProcesses& processes);

  /// Undoes what `entries` record, newest first: processes, then the pods'
  /// CNI DELs, then namespaces and files. Idempotent; keeps going past
  /// failures and throws the first one at the end.
  static void undo(const std::vector<JournalEntry>& entries, Kernel& kernel, Runtime& runtime,
                   Programs& programs);

 private:
  std::map<std::string, PodProcesses> build(Plan& plan,
                                            std::optional<ProcessRecord> existing_template);
  /// cni = "external": runs ADD for every pod of `plan` with a namespace of
  /// its own and sets its address.
  void attach_pods(Plan& plan);
  /// Journals `namespaces`, then creates them and runs `inside` as
  /// Kernel::create_netns does; cancels the entries of those not created.
  void create_namespaces(const std::vector<NetnsSpec>& namespaces,
                         const std::function<void(size_t)>& inside);
  void report(std::string_view phase, size_t done, size_t total) const {
    if (options_.progress) options_.progress(phase, done, total);
  }

  Kernel& kernel_;
  Runtime& runtime_;
  Programs& programs_;
  Journal& journal_;
  ExecutorOptions options_;
};

}  // namespace knl
