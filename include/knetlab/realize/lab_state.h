#pragma once
// A running lab as its control loop holds it, and the reconcilers that keep
// the kernel and the lab's programs in line with it. Each reconciler owns one
// kind of side effect (rules, routes, announcements, processes), remembers
// what it applied, and changes the lab only through the interfaces in
// Effects, so that every one can be tested with fakes (tests/unit/fakes.h).

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "knetlab/kernel/kernel.h"
#include "knetlab/kernel/programs.h"
#include "knetlab/plan/plan.h"
#include "knetlab/realize/journal.h"
#include "knetlab/runtime/runtime.h"

namespace knl {

using Clock = std::chrono::steady_clock;

/// A running pod as its kubelet sees it.
struct PodHealth {
  std::set<std::string> dead;     // containers not running
  std::set<std::string> unready;  // containers whose readiness probe fails
  std::map<std::string, int> restarts;
  std::map<std::string, Clock::time_point> restart_at;  // containers due to start again
  bool terminating = false;                             // being deleted: out of every endpoint list
  bool ready() const { return !terminating && dead.empty() && unready.empty(); }
};

/// What the lab should be (topology, plan) and what was observed of it
/// (processes, health, endpoints). Owned by the Controller; reconcilers read
/// it and update only the observed parts they are named for.
struct LabState {
  Topology topology;
  PlanContext context;
  Plan plan;
  ProcessRecord mount_template;
  std::map<std::string, PodProcesses> processes;  // by pod key
  std::map<std::string, PodHealth> health;        // by pod key
  EndpointMap endpoints;                          // the endpoints controller's

  /// Running, not terminating, every container up and passing its probe.
  bool ready(const PodPlan& pod) const;
  /// Pod keys that are ready.
  std::set<std::string> ready_pods() const;
};

/// What changed since the last pass of the loop. Each reconciler reads what
/// concerns it and adds what later ones must see.
struct Changes {
  bool all = false;             // the first pass, or after apply: look at everything
  std::set<std::string> pods;   // added, removed, or whose readiness may have changed
  std::set<std::string> bgpds;  // FRR targets whose bgpd was started again
  /// Services whose endpoints changed, by their place in Plan::services
  /// (which only a pass over everything may change), each with its
  /// endpoints before (none for a service seen for the first time).
  std::map<size_t, ServiceEndpoints> services;
  bool retry = false;  // a reconciler has work left over: run a pass anyway
  bool empty() const { return !all && !retry && pods.empty() && bgpds.empty(); }
};

/// What reconcilers change the lab through, and where they say what they did.
struct Effects {
  Kernel& kernel;
  Runtime& runtime;
  Programs& programs;
  Journal& journal;
  /// One line for the lab's events log.
  std::function<void(const std::string&)> event;
};

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual std::string_view name() const = 0;
  /// Brings what this reconciler owns in line with `lab` for `changes`, and
  /// adds to `changes` what later reconcilers must see. When the kernel or a
  /// program refuses, it remembers what is still to do, for tick(), and
  /// throws the SystemError; what it did apply stays recorded as applied.
  virtual void reconcile(LabState& lab, Changes& changes) = 0;
  /// About once a second: what reconcile() left to do, deferred cleanups,
  /// probes. May add to `changes`, which a pass then reconciles.
  virtual void tick(LabState& lab, Changes& changes) {
    (void)lab;
    (void)changes;
  }
};

}  // namespace knl
