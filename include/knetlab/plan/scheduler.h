#pragma once
// Where a new pod goes and which address it gets. One scheduler and one
// address allocator serve deploy, scale, delete and apply alike, so a pod
// lands where it would whichever command made it. Pure: no kernel, no clock.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "knetlab/plan/plan.h"

namespace knl {

/// kube-scheduler's spreading, as far as a lab needs it: a new pod goes to
/// the eligible node with the fewest pods; among those, to the one with the
/// fewest pods of its own deployment (replicas spread, as the default
/// topology spread does), then by node order. A node is eligible when it is
/// in the pod's list (any node when the list is empty) and, for a pod with an
/// address of its own, its pod CIDR has one free.
class Scheduler {
 public:
  /// `nodes` in node order, with no pod yet.
  explicit Scheduler(const std::vector<NodePlan>& nodes);
  /// The scheduler with the pods of a running lab counted.
  static Scheduler of(const Plan& plan);

  /// Counts a pod of `owner` (its deployment, "namespace/name", or "" for a
  /// bare pod) already on `node`; false (nothing counted) when its pod CIDR
  /// is full and the pod needs an address.
  bool place(const std::string& node, bool host_network, const std::string& owner);
  /// Picks a node for a new pod of `owner` among `eligible` and counts the
  /// pod there; std::nullopt when no eligible node has room.
  std::optional<std::string> pick(const std::vector<std::string>& eligible, bool host_network,
                                  const std::string& owner);
  /// How many pods with an address of their own `node` can hold.
  size_t room(const std::string& node) const;

 private:
  struct Load {
    std::string name;
    size_t pods = 0;       // every pod, hostNetwork ones too
    size_t addressed = 0;  // pods with an address from the pod CIDR
    size_t room = 0;
    std::map<std::string, size_t> owners;  // pods per deployment
  };
  Load* find(const std::string& node);
  std::vector<Load> nodes_;
};

/// host-local IPAM, one range per node: the address after the last one
/// handed out, wrapping inside the node's pod CIDR from .2 (.1 is cni0's,
/// the last is the broadcast address), skipping those in use.
class PodAddresses {
 public:
  /// `last` is what a running lab handed out last per node (Plan::cursors).
  PodAddresses(const std::vector<NodePlan>& nodes, const std::map<std::string, Ipv4>& last = {});
  /// The allocator with the addresses of a running lab's pods in use.
  static PodAddresses of(const Plan& plan);

  /// Marks `ip` on `node` in use (a running pod's).
  void use(const std::string& node, Ipv4 ip);
  void release(const std::string& node, Ipv4 ip);
  /// The next free address of `node`; SystemError (ENOSPC) naming the node
  /// when its pod CIDR has none.
  Ipv4 allocate(const std::string& node);
  /// The address handed out last, per node.
  std::map<std::string, Ipv4> last() const;

 private:
  struct Range {
    Ipv4Net cidr;
    std::set<Ipv4> used;
    std::optional<Ipv4> last;
  };
  std::map<std::string, Range> ranges_;
};

}  // namespace knl
