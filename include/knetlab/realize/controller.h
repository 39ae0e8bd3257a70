#pragma once
// The lab's control plane, run by its supervisor after deploy. It holds the
// lab's state and runs its control loop: a pass runs every reconciler in
// order (realize/reconcilers.h) over what changed. Passes follow process
// exits, ticks, and the command line's requests: scale and delete (the
// ReplicaSet's part, with the plan's scheduler and address allocator) and
// apply (adding what a topology file adds).

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "knetlab/realize/lab_state.h"
#include "knetlab/realize/reconcilers.h"
#include "knetlab/realize/record.h"

namespace knl {

struct ControllerOptions {
  std::chrono::milliseconds restart_backoff{10000};  // doubled per restart, up to 5 minutes
  /// Called after every pass with the lab as it now is, for its record.
  std::function<void(const LabState&)> publish;
  /// Lines for the lab's events log.
  std::function<void(const std::string&)> event;
};

class Controller {
 public:
  /// `lab` holds a deployed lab: its plan and its pods' processes, every
  /// pod healthy. Nothing is changed before start().
  Controller(LabState lab, Kernel& kernel, Runtime& runtime, Programs& programs, Journal& journal,
             ControllerOptions options);
  ~Controller();

  /// The first pass, over everything: endpoints, every node's rules, the
  /// load balancer's routes, announcements. Throws what a reconciler threw.
  void start();
  /// A process of the lab exited (from the supervisor's waitpid).
  void exited(int pid, int status);
  /// Runs one pass for the exits since the last call: once for a burst of
  /// exits, not once per process.
  void settle();
  /// About once a second: every reconciler's tick, then a pass for what the
  /// ticks changed. Failures become events; the next tick tries again.
  void tick();
  /// Serves a request of the command line; returns its result's JSON.
  /// UserError for a bad request, SystemError when the lab refused.
  nlohmann::json request(const Request& request);
  /// Waits until BGP has converged (knl::wait_for_bgp), every router also
  /// holding the LoadBalancer IP of each Local service with a ready
  /// endpoint. Announcements refused meanwhile are tried again. Throws
  /// SystemError at `deadline`.
  void wait_for_bgp(Clock::time_point deadline);

  const LabState& lab() const { return lab_; }

 private:
  /// Runs every reconciler in order on `changes`, then publishes. Every one
  /// runs even when one throws; the first failure is rethrown after.
  void pass(Changes changes);
  ScaleResult scale(const std::string& deployment, int replicas);
  DeleteResult remove(const std::string& pod);
  ApplyResult apply(const std::string& file);
  const Deployment& find_deployment(const std::string& name) const;
  /// Makes the next pod of `deployment` on the node the scheduler picks.
  std::string add_replica(const Deployment& deployment);
  /// Takes `key` out of its services' endpoints (a pass), then stops it.
  void delete_pod(const std::string& key);
  /// Takes running pods under the controller's care, healthy.
  void adopt(const std::map<std::string, PodProcesses>& pods);

  LabState lab_;
  Effects effects_;
  ControllerOptions options_;
  std::vector<std::unique_ptr<Reconciler>> reconcilers_;  // in pass order
  LifecycleReconciler* lifecycle_ = nullptr;
  DaemonsReconciler* daemons_ = nullptr;
  AnnouncementsReconciler* announcements_ = nullptr;
  std::set<std::string> exited_pods_;  // since the last settle()
  double last_pass_seconds_ = 0;
  size_t last_pass_services_ = 0;
};

}  // namespace knl
