#pragma once
// The lab's control plane, run by its supervisor after deploy: the endpoints
// controller (ready pods -> endpoints), kube-proxy (endpoints -> every node's
// NAT rules, synced incrementally), the cloud load balancer's health-checked
// routes, the kubelet's part (readiness probes, container restarts with
// back-off) and the ReplicaSet's (scale, re-creating deleted pods).

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "knetlab/kernel/kernel.h"
#include "knetlab/plan/kubeproxy.h"
#include "knetlab/realize/executor.h"
#include "knetlab/realize/journal.h"
#include "knetlab/realize/routing.h"
#include "knetlab/runtime/runtime.h"

namespace knl {

class NftSession;

struct ControllerOptions {
  std::chrono::milliseconds restart_backoff{10000};  // doubled per restart, up to 5 minutes
  /// Called after every change with the lab's new record to keep.
  std::function<void(const Plan&, const std::map<std::string, PodProcesses>&, const EndpointMap&,
                     const std::set<std::string>& ready_pods)>
      publish;
  /// Lines for the lab's events log.
  std::function<void(const std::string&)> event;
};

class Controller {
 public:
  Controller(Topology topology, PlanContext context, Plan plan,
             std::map<std::string, PodProcesses> pods, Journal& journal, Kernel& kernel,
             Runtime& runtime, ControllerOptions options);
  ~Controller();

  /// The first sync of every node's rules and the load balancer's routes.
  void start();
  /// A process of the lab exited (from the supervisor's waitpid).
  void exited(int pid, int status);
  /// Syncs and publishes what the exits since the last call changed: once
  /// for a burst of exits, not once per process.
  void settle();
  /// Periodic work: readiness probes and restarts that are due.
  void tick();
  /// Reconciles the lab to the topology in `file` (apply): adds the nodes,
  /// hosts, racks and pods it adds, wires them to what runs, gives running
  /// FRR instances their new peers without restarting a session, and syncs
  /// kube-proxy on the new nodes. Refuses (UserError) any other change.
  nlohmann::json apply(const std::string& file);
  /// A request from the command line (scale, delete, apply); returns the answer.
  nlohmann::json request(const nlohmann::json& request);

  /// Waits until BGP has converged (knl::wait_for_bgp): every router also has
  /// the LoadBalancer IP of each Local service with a ready endpoint, from
  /// the nodes that have one. An announcement that failed is tried again
  /// meanwhile. Throws SystemError at `deadline`.
  void wait_for_bgp(std::chrono::steady_clock::time_point deadline);

  /// Seconds the last sync took, and how many services it touched.
  double last_sync_seconds() const { return last_sync_seconds_; }
  size_t last_sync_services() const { return last_sync_services_; }

 private:
  struct PodState {
    std::set<std::string> dead;     // containers not running
    std::set<std::string> unready;  // containers whose readiness probe fails
    std::map<std::string, int> restarts;
    std::map<std::string, std::chrono::steady_clock::time_point> restart_at;
    bool terminating = false;
  };
  struct NodeProxy;

  bool ready(const PodPlan& pod) const;
  /// Takes running pod `key` under the controller's care.
  void adopt(const std::string& key, const PodProcesses& procs);
  /// The last pod IP per node and next pod index per deployment, from plan_.
  void note_allocations();
  std::unique_ptr<NodeProxy> make_proxy(const NodePlan& node) const;
  /// Recomputes endpoints (of the services that can select a pod of
  /// `touched`; all when empty or on the first sync) and applies what
  /// changed to every node. The caller publishes the new record.
  void sync(const std::set<std::string>& touched = {});
  void sync_node(NodeProxy& node, const std::vector<const ServicePlan*>& changed,
                 const EndpointMap& endpoints, bool first);
  void sync_load_balancer();
  /// MetalLB's BGP mode: a Local service's LoadBalancer IP is announced by
  /// the nodes with a ready endpoint (Cluster ones are in frr.conf).
  void sync_bgp_announcements();
  /// The nodes with a ready endpoint of `s`.
  std::set<std::string> endpoint_nodes(const ServicePlan& s) const;
  /// FRR daemons that exited are started again after a back-off, as
  /// watchfrr would.
  void restart_daemons(std::chrono::steady_clock::time_point now);
  void clear_udp_conntrack(const ServicePlan& service, const ServiceEndpoints& before,
                           const ServiceEndpoints& after);
  void publish();
  void event(const std::string& text);

  nlohmann::json scale(const std::string& deployment, int replicas);
  nlohmann::json remove(const std::string& pod);
  const Deployment& find_deployment(const std::string& name) const;
  /// Adds one pod to `deployment` on its least used node.
  std::string add_replica(const Deployment& deployment);
  Ipv4 allocate_ip(const NodePlan& node);
  void delete_pod(const std::string& key);

  Topology topology_;
  PlanContext context_;
  Plan plan_;
  std::map<std::string, PodProcesses> pods_;
  std::map<std::string, PodState> states_;
  std::map<int, std::pair<std::string, std::string>> pid_owner_;  // pid -> (pod, container or "")
  Journal& journal_;
  Kernel& kernel_;
  Runtime& runtime_;
  ControllerOptions options_;
  ProcessRecord mount_template_;
  std::vector<std::unique_ptr<NodeProxy>> nodes_;
  EndpointMap endpoints_;
  /// Services (indexes into plan_.services) by "namespace/key=value" of the
  /// first pair of their selector: a pod can be selected only by those of
  /// its own labels.
  std::unordered_map<std::string, std::vector<size_t>> services_by_label_;
  void index_services();
  std::map<std::string, std::vector<Ipv4>> lb_routes_;      // LB IP -> nodes it goes to
  std::map<std::string, std::set<std::string>> announced_;  // LB IP -> nodes announcing it
  struct DaemonState {
    ProcessRecord process;
    int restarts = 0;
    std::optional<std::chrono::steady_clock::time_point> restart_at;
  };
  std::map<std::string, DaemonState> daemons_;  // by DaemonPlan::name
  bool retry_announcements_ = false;            // an announcement failed: try again on a tick
  std::set<std::string> exited_pods_;           // pods whose processes exited since settle()
  std::map<std::string, Ipv4> last_ip_;         // node -> last pod IP handed out
  std::map<std::string, int> next_index_;       // deployment -> next pod index
  bool started_ = false;
  double last_sync_seconds_ = 0;
  size_t last_sync_services_ = 0;
};

}  // namespace knl
