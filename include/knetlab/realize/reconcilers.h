#pragma once
// The reconcilers of a lab's control loop, in the order a pass runs them:
// the kubelet's part (container restarts, readiness), FRR's watchdog,
// network policies, the endpoints controller, kube-proxy, the cluster DNS,
// the ingress controller, the cloud load balancer and MetalLB's announcements. Each lives in
// emulator/realize/reconcilers/, one file each.

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "knetlab/plan/dns.h"
#include "knetlab/plan/endpoints.h"
#include "knetlab/plan/ingress.h"
#include "knetlab/plan/kubeproxy.h"
#include "knetlab/realize/lab_state.h"

namespace knl {

/// The kubelet's part: a container that exited is started again in its pod
/// after a back-off (doubling from `backoff`, up to 5 minutes); readiness
/// probes run on every tick. Pods whose readiness may have changed go to
/// Changes::pods.
class LifecycleReconciler final : public Reconciler {
 public:
  LifecycleReconciler(Effects& effects, std::chrono::milliseconds backoff)
      : effects_(effects), backoff_(backoff) {}
  std::string_view name() const override { return "lifecycle"; }
  /// Notes which pods' processes are which (all of them, or Changes::pods).
  void reconcile(LabState& lab, Changes& changes) override;
  /// Restarts what is due, then probes readiness.
  void tick(LabState& lab, Changes& changes) override;
  /// A process exited: true when it was a pod's, whose health is updated
  /// and whose key is added to `pods`.
  bool exited(LabState& lab, int pid, int status, std::set<std::string>& pods);

 private:
  Effects& effects_;
  std::chrono::milliseconds backoff_;
  std::map<int, std::pair<std::string, std::string>> owners_;  // pid -> (pod, container or "")
};

/// watchfrr's part: an FRR daemon that exited is started again after a
/// back-off. A restarted bgpd goes to Changes::bgpds: it knows only frr.conf.
class DaemonsReconciler final : public Reconciler {
 public:
  DaemonsReconciler(Effects& effects, std::chrono::milliseconds backoff)
      : effects_(effects), backoff_(backoff) {}
  std::string_view name() const override { return "daemons"; }
  /// Takes the lab's daemons from the journal (all of them on Changes::all).
  void reconcile(LabState& lab, Changes& changes) override;
  void tick(LabState& lab, Changes& changes) override;
  /// A process exited: true when it was a daemon, then due for a restart.
  bool exited(int pid, int status);

 private:
  struct Daemon {
    ProcessRecord process;
    int restarts = 0;
    std::optional<Clock::time_point> restart_at;
  };
  Effects& effects_;
  std::chrono::milliseconds backoff_;
  std::map<std::string, Daemon> daemons_;  // by DaemonPlan::name
};

/// The endpoints controller: the endpoints of every service that may
/// select a pod of Changes::pods (every service on Changes::all) into
/// LabState::endpoints, and those that changed into Changes::services.
class EndpointsReconciler final : public Reconciler {
 public:
  std::string_view name() const override { return "endpoints"; }
  void reconcile(LabState& lab, Changes& changes) override;

 private:
  std::optional<ServiceIndex> index_;
};

/// kube-proxy on every node: the rules of the services in Changes::services
/// (all of a node's the first time), in one nftables transaction or one
/// iptables-restore per node (nftables first loads: several nodes at once,
/// see Kernel::nft_load), and the UDP conntrack entries toward removed
/// endpoints. A node whose sync was refused keeps its last rules and is
/// synced again on the next tick. Chains and sets that fell out of use are
/// deleted on a tick, off the sync's path, as kube-proxy defers it.
class KubeProxyReconciler final : public Reconciler {
 public:
  explicit KubeProxyReconciler(Effects& effects);
  ~KubeProxyReconciler() override;
  std::string_view name() const override { return "kube-proxy"; }
  void reconcile(LabState& lab, Changes& changes) override;
  void tick(LabState& lab, Changes& changes) override;

 private:
  struct NodeProxy;
  /// Syncs `services` on `node`; false when the kernel or iptables-restore
  /// refused, the error kept in `failure`.
  bool sync(const LabState& lab, NodeProxy& node, const std::vector<const ServicePlan*>& services,
            std::string& failure);
  /// nftables: loads `services` on `nodes`, none loaded yet, in parallel; a
  /// failure per node, empty for those that took their whole load.
  std::vector<std::string> first_loads(const LabState& lab, const std::vector<NodeProxy*>& nodes,
                                       const std::vector<const ServicePlan*>& services);
  void clear_conntrack(const LabState& lab, const Changes& changes);
  Effects& effects_;
  std::vector<std::unique_ptr<NodeProxy>> nodes_;  // in node order
};

/// NetworkPolicy on every node: the table of plan/policy.h follows the
/// lab's policies and pods (added, removed, relabelled; every one on
/// Changes::all) with one nftables transaction per node and pass, which the
/// kernel applies atomically: an established connection is never dropped
/// by a change that still allows it. A node that refused is tried again on
/// the next tick; chains and sets that fell out of use are deleted on a
/// tick. A lab that never had a policy gets no table.
class PolicyReconciler final : public Reconciler {
 public:
  explicit PolicyReconciler(Effects& effects) : effects_(effects) {}
  std::string_view name() const override { return "network policy"; }
  void reconcile(LabState& lab, Changes& changes) override;
  void tick(LabState& lab, Changes& changes) override;

 private:
  struct NodeTable {
    bool loaded = false, retry = false;
    NftPiece applied, desired;
    std::set<std::string> stale_chains, stale_sets;  // flushed, deleted on a tick
  };
  /// Takes `table` from what it applied to what it desires; false when the
  /// kernel refused, the error kept in `failure`.
  bool sync(const LabState& lab, const NodePlan& node, NodeTable& table, std::string& failure);
  Effects& effects_;
  std::map<std::string, NodeTable> tables_;  // by node name
};

/// The cluster DNS: the zone of every replica (Knot DNS in a
/// kube-system/coredns pod) follows the lab's records (plan/dns.h) with one
/// knotc transaction per replica and pass (the replicas' at once), which
/// the server applies atomically, so no query sees half a change. A replica
/// first seen after the deploy (a new or re-created pod) gets its whole zone
/// written and reloaded. Only the records of the services and pods a pass
/// changed are recomputed. A replica that refused is tried again in the pass
/// after the next tick.
class DnsReconciler final : public Reconciler {
 public:
  explicit DnsReconciler(Effects& effects) : effects_(effects) {}
  std::string_view name() const override { return "dns"; }
  void reconcile(LabState& lab, Changes& changes) override;
  void tick(LabState& lab, Changes& changes) override;

 private:
  Effects& effects_;
  DnsRecordSets desired_;
  std::map<std::string, DnsRecordSets> applied_;  // by DNS pod key
  bool started_ = false, pending_ = false;
};

/// Which nginx data plane a reconciler keeps.
enum class NginxRole { ingress, gateway };

/// The ingress controller (role ingress) or the gateways' data planes (role
/// gateway): each of their pods' nginx configuration (plan/ingress.h,
/// plan/gateway.h) follows the ingresses or routes and the ready endpoints
/// of their services; a changed one is written and nginx reloaded
/// gracefully (its old workers finish the requests in flight), all pods at
/// once. A reload nginx refused is tried again in the pass after the next
/// tick, the last good configuration serving meanwhile.
class NginxReconciler final : public Reconciler {
 public:
  NginxReconciler(Effects& effects, NginxRole role) : effects_(effects), role_(role) {}
  std::string_view name() const override {
    return role_ == NginxRole::ingress ? "ingress" : "gateway";
  }
  void reconcile(LabState& lab, Changes& changes) override;
  void tick(LabState& lab, Changes& changes) override;

 private:
  /// Checks `config` with nginx -t, writes it and has the pod's nginx serve
  /// it; returns once it does. Throws SystemError naming the pod when nginx
  /// refuses it or does not serve it within 2 s.
  void reload(LabState& lab, const PodPlan& pod, const NginxConfig& config);

  Effects& effects_;
  NginxRole role_;
  std::map<std::string, std::string> applied_;  // by controller pod key: its configuration
  bool pending_ = false;
};

/// The emulated cloud's load balancer: a route per LoadBalancer IP in its
/// namespace, with the nodes that pass its health check as next hops.
class CloudLoadBalancerReconciler final : public Reconciler {
 public:
  explicit CloudLoadBalancerReconciler(Effects& effects) : effects_(effects) {}
  std::string_view name() const override { return "cloud load balancer"; }
  void reconcile(LabState& lab, Changes& changes) override;

 private:
  Effects& effects_;
  std::map<Ipv4, std::vector<Ipv4>> routes_;  // LoadBalancer IP -> the nodes routed to
};

/// MetalLB's BGP mode: a Local service's LoadBalancer IP is announced by
/// the nodes with a ready endpoint, added and withdrawn through vtysh as
/// endpoints move (Cluster ones are in frr.conf). An announcement a bgpd
/// refused is tried again by the pass after the next tick.
class AnnouncementsReconciler final : public Reconciler {
 public:
  explicit AnnouncementsReconciler(Effects& effects) : effects_(effects) {}
  std::string_view name() const override { return "announcements"; }
  void reconcile(LabState& lab, Changes& changes) override;
  /// Asks for a pass (Changes::retry) while an announcement waits.
  void tick(LabState& lab, Changes& changes) override;
  /// True while an announcement waits to be tried again.
  bool pending() const { return pending_; }

 private:
  Effects& effects_;
  std::map<Ipv4, std::set<std::string>> announced_;  // LoadBalancer IP -> announcing nodes
  bool pending_ = false;
};

}  // namespace knl
