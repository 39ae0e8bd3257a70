#pragma once
// What `knetlab apply` does to a running lab, decided without touching it:
// the objects a new plan adds to the running one, what running FRR
// instances must learn, the pods it relabels, whether network policies
// change, and why any other change is refused. Pure.

#include <string>
#include <utility>
#include <vector>

#include "knetlab/plan/plan.h"

namespace knl {

/// The allocations of `running` that a plan made for apply keeps as they
/// are: machine addresses, pod CIDRs, where each pod runs and the cursors.
Allocations running_allocations(const Plan& running);

/// A running FRR instance's new BGP networks and peers, added in place
/// (no session restarts).
struct FrrAdditions {
  const FrrPlan* frr = nullptr;  // in the new plan
  std::vector<std::pair<Ipv4Net, std::string>> networks;
  std::vector<BgpPeer> peers;
};

struct ApplyDiff {
  /// Each change that apply cannot make, in words; apply refuses when any.
  std::vector<std::string> refused;
  /// What is new, in the executor's order; everything running is left out.
  Plan fragment;
  /// Names of what is added, for the answer.
  std::vector<std::string> nodes, hosts, routers, pods;
  std::vector<FrrAdditions> frr;
  /// Running pods whose labels change (in place, as `kubectl label` does).
  std::vector<std::string> relabelled;
  /// The network policies or the namespaces' labels change.
  bool policies = false;
  /// The ingresses change (the controller's configuration follows).
  bool ingresses = false;
  /// Whether the fragment holds anything to create.
  bool adds() const {
    return !fragment.namespaces.empty() || !fragment.links.empty() || !fragment.files.empty() ||
           !fragment.sysctls.empty() || !fragment.pods.empty();
  }
  bool empty() const { return !adds() && relabelled.empty() && !policies && !ingresses; }
};

/// The difference between the `running` plan and `next`, made from the
/// file with running_allocations(running) kept. `next` must outlive the result.
ApplyDiff diff_for_apply(const Plan& running, const Plan& next);

}  // namespace knl
