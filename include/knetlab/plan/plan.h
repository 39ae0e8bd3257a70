#pragma once
// Topology -> Plan: every address, name and kernel object the lab needs, per
// namespace, in the order the executor creates them. make_plan() is pure and
// deterministic: the same inputs give the same plan, byte for byte.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "knetlab/net/objects.h"
#include "knetlab/plan/services.h"
#include "knetlab/topology/model.h"

namespace knl {

/// What an image folder says (images/<name>/image.toml).
struct ImageSpec {
  std::string name;
  std::string program;  // absolute path of the program to run
  std::vector<std::string> args;
};

/// Where the allocators of a running lab stand: the next pod of a
/// deployment and the next address of a node follow from them, as in a
/// cluster that never hands out a name or an address twice in a row.
struct Cursors {
  std::map<std::string, Ipv4> last_pod_ip;  // node -> the pod address handed out last
  std::map<std::string, int> next_replica;  // "namespace/deployment" -> its next pod's index
  bool operator==(const Cursors&) const = default;
};

/// A running pod, as apply keeps it: on its node, with its address.
struct RunningPod {
  std::string node;
  Ipv4 ip;
};

/// What a running lab already handed out (apply): kept as they are, and not
/// handed out again to what the file adds.
struct Allocations {
  std::map<std::string, Ipv4> machines;      // "node/NAME" or "host/NAME" -> LAN address
  std::map<std::string, Ipv4Net> pod_cidrs;  // node -> pod CIDR
  std::map<std::string, RunningPod> pods;    // pod key -> where it runs
  Cursors cursors;
};

/// Inputs besides the topology: where files go and which images exist.
struct PlanContext {
  std::string run_root = "/run/knetlab";  // the lab's files go to <run_root>/<lab>
  std::string bin_dir;                    // put first on every container's PATH
  std::map<std::string, ImageSpec> images;
  std::string frr_dir = "/usr/lib/frr";  // where zebra and bgpd are
  Allocations kept;
};

struct ContainerPlan {
  std::string name;
  std::string image;              // the image folder's name; empty with `command`
  std::vector<std::string> argv;  // argv[0] is an absolute path or a PATH name
  std::string log_path;
  std::vector<int> tcp_ports;  // declared TCP container ports: ready once they accept
  std::vector<ContainerPort> ports;
  std::optional<Readiness> readiness;
};

struct PodPlan {
  std::string name, namespace_, node, deployment;
  Ipv4 ip;
  std::string netns;       // the pod's own, or the node's with hostNetwork
  std::string node_netns;  // where the kubelet's probes come from
  bool host_network = false;
  Labels labels;
  Labels annotations;
  std::string hostname;   // its UTS name: the spec's hostname, or the pod's name
  std::string subdomain;  // with a headless service of that name, HOSTNAME.SUBDOMAIN.NS.svc.ZONE
  std::string dir;        // resolv.conf, hosts, hostname and the container logs
  std::vector<ContainerPlan> containers;
  std::string key() const { return namespace_ + "/" + name; }
  /// Runs the `dns` image: a replica of the cluster DNS.
  bool serves_dns() const;
  /// Runs the `nginx` image: the ingress controller's or a gateway's data plane.
  bool runs_nginx() const;
  /// A replica of the ingress controller.
  bool serves_ingress() const;
};

struct NodePlan {
  std::string name;
  NodeRole role = NodeRole::worker;
  std::string netns, vtep_mac;
  Ipv4 ip;
  Ipv4Net pod_cidr;
  std::string rack;  // empty without racks
};

struct HostPlan {
  std::string name, netns;
  Ipv4 ip;
  std::string rack;
  std::vector<std::string> dns_names;  // in the outside world's DNS
};

/// A router namespace: a rack's top-of-rack router (its LAN's bridge and
/// gateway), the spine, or the LAN's gateway when no racks are written.
struct RouterPlan {
  std::string name;  // the rack's name, "spine" or "lan"
  std::string netns;
  uint32_t asn = 0;
  Ipv4 ip;         // its address on its LAN, or the spine's first link
  Ipv4Net subnet;  // the LAN it is the gateway of (none for the spine)
  bool runs_frr = false;
};

/// A BGP session as one side configures it.
struct BgpPeer {
  Ipv4 ip;
  uint32_t asn = 0;
  std::string target;       // "node/NAME" or "router/NAME"
  bool passive = false;     // wait for the peer to connect
  bool allowas_in = false;  // accept paths that already carry our own ASN once
  bool operator==(const BgpPeer&) const = default;
};

/// One FRR instance (zebra + bgpd) of a node or router.
struct FrrPlan {
  std::string target;  // "node/NAME" or "router/NAME"
  std::string name;    // the node's or router's name
  std::string netns, dir;
  uint32_t asn = 0;
  Ipv4 router_id;
  std::vector<BgpPeer> peers;
  std::vector<std::pair<Ipv4Net, std::string>> networks;  // originated, with why
  /// Routes this kernel must hold once BGP has converged, with what they are.
  std::vector<std::pair<Ipv4Net, std::string>> expected;
  bool multipath = false;        // install equal paths as ECMP routes
  bool announces_local = false;  // the controller adds Local services' LoadBalancer IPs
  std::string config_path() const { return dir + "/frr.conf"; }
};

/// A long-running process of the lab that is not a pod (FRR's daemons). It
/// runs as `user` in `netns` and in a mount namespace of its own in which
/// each `binds` source is mounted over its target.
struct DaemonPlan {
  std::string name;  // "bgpd of router/spine"
  std::string netns, dir, user, log_path;
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> binds;
  std::string wait_for;  // a file that must exist before it starts (bgpd: zebra's socket)
  bool operator==(const DaemonPlan&) const = default;
};

struct Plan {
  std::string lab, file, run_dir, bin_dir;
  Network network;
  std::string lan_netns;
  Ipv4 lan_gateway;
  std::vector<NodePlan> nodes;
  std::vector<HostPlan> hosts;
  std::vector<RouterPlan> routers;
  std::vector<FrrPlan> frr;
  std::vector<DaemonPlan> daemons;
  std::vector<PodPlan> pods;
  std::vector<ServicePlan> services;
  /// Kubernetes namespaces by name, with the labels selectors see.
  std::map<std::string, Labels> namespace_labels;
  std::vector<NetworkPolicy> network_policies;
  std::vector<Ingress> ingresses;
  std::vector<Gateway> gateways;
  std::vector<HttpRoute> http_routes;
  std::string lb_netns;  // the cloud load balancer, when a LoadBalancer service needs one
  Ipv4 lb_ip;
  Cursors cursors;

  // Desired kernel objects, in creation order.
  std::vector<NetnsSpec> namespaces;
  std::vector<LinkSpec> links;
  std::vector<AddressSpec> addresses;
  std::vector<RouteSpec> routes;
  std::vector<NeighbourSpec> neighbours;
  std::vector<FdbSpec> fdb;
  std::vector<SysctlSpec> sysctls;
  std::vector<FileSpec> files;
};

/// Kernel object names (DESIGN.md "How the lab looks in the kernel").
std::string netns_prefix(const std::string& lab);
std::string node_netns(const std::string& lab, const std::string& node);
std::string host_netns(const std::string& lab, const std::string& host);
std::string pod_netns(const std::string& lab, const std::string& ns, const std::string& pod);
std::string lan_netns(const std::string& lab);
std::string router_netns(const std::string& lab, const std::string& router);
/// The bgpd lines that configure `peer` in `frr`: under `router bgp`, and
/// under its ipv4 unicast address family.
struct PeerLines {
  std::vector<std::string> router, address_family;
};
PeerLines bgp_peer_lines(const FrrPlan& frr, const BgpPeer& peer);
/// The frr.conf of `frr` (commented: trainees open it).
std::string frr_config(const Plan& plan, const FrrPlan& frr);
/// "veth" + 8 hex digits: the node side of a pod's veth pair.
std::string pod_veth_name(const std::string& ns, const std::string& pod);

/// Throws UserError (naming the file location) for what only planning can see,
/// such as an image that does not exist.
Plan make_plan(const Topology& topology, const PlanContext& context);

/// Takes a running lab's added pod into its plan: the fragment's pods and
/// kernel objects join `plan`, so that a later `apply` finds them made.
void adopt_fragment(Plan& plan, Plan&& fragment);
/// Takes a deleted pod out of its lab's plan: the pod and every object of
/// its own network namespace and folder (a hostNetwork pod's namespace is its
/// node's and stays).
void forget_pod(Plan& plan, const std::string& key);

/// The objects of one more pod of a running lab (scale, re-creation): `pod`
/// at `ip` on its node, next to what `existing` already holds.
Plan plan_added_pod(const Topology& topology, const PlanContext& context, const Plan& existing,
                    const Pod& pod, Ipv4 ip);

}  // namespace knl
