#pragma once
// The validated model of one topology file: plain values, immutable once
// parse_topology() returns it. Every field here has passed validation; later
// layers never re-check user input. Each object keeps where it was written
// (`where`) so that a later refusal can still name the file and line.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "knetlab/topology/ipv4.h"

namespace knl {

/// "FILE:LINE:COLUMN" of a value in the topology file.
struct Where {
  std::string file;
  unsigned line = 0;
  unsigned column = 0;
  std::string str() const;
};

using Labels = std::map<std::string, std::string>;

/// The ASN of the spine (with racks) or of the LAN's router (without).
inline constexpr uint32_t kSpineAsn = 65000;
/// Where the spine's point-to-point links to the racks' routers are numbered.
inline constexpr const char* kDefaultFabric = "10.255.255.0/24";

struct BgpConfig {
  uint32_t node_asn = 64512;
  std::string peering = "mesh";  // mesh | tor
  Ipv4Net fabric_subnet = *Ipv4Net::parse(kDefaultFabric);
};

struct CniConfig {
  std::string conflist;
  std::string bin_dir = "/usr/lib/cni";
};

struct Network {
  std::string cni = "vxlan";  // vxlan | bgp | bridge | external
  std::string kube_proxy_mode = "nftables";
  /// How nftables mode picks an endpoint: "vmap" is kube-proxy's own
  /// `numgen random mod N vmap { … }`; "rules" is one `numgen` rule per
  /// endpoint (iptables' probabilities) with no anonymous map, for labs of
  /// thousands of services (the kernel's cost per anonymous map grows with
  /// their number).
  std::string nftables_picker = "vmap";
  Ipv4Net pod_subnet = *Ipv4Net::parse("10.244.0.0/16");
  Ipv4Net service_subnet = *Ipv4Net::parse("10.96.0.0/16");
  Ipv4Net node_subnet = *Ipv4Net::parse("172.18.0.0/24");
  int node_mask_size = 24;
  int node_port_min = 30000, node_port_max = 32767;
  Ipv4 lb_pool_first = *Ipv4::parse("172.18.0.200"), lb_pool_last = *Ipv4::parse("172.18.0.250");
  std::string load_balancer_mode = "cloud";  // cloud | bgp
  int mtu = 1500;
  std::string dns_domain = "cluster.local";
  std::string ip_family = "ipv4";  // ipv4 | ipv6 | dual
  std::optional<BgpConfig> bgp;    // present when [network.bgp] was written
  std::optional<CniConfig> cni_config;
  Where where_cni, where_ip_family, where_bgp, where_cni_config, where_load_balancer_mode;
  /// [network.bgp] as written, or its defaults.
  BgpConfig bgp_or_default() const { return bgp.value_or(BgpConfig{}); }
};

struct Rack {
  std::string name;
  Ipv4Net subnet;
  uint32_t asn = 0;
  Where where;
};

struct Node {
  std::string name;
  std::string role = "worker";  // control-plane | worker
  std::string rack;             // empty without racks
  std::optional<Ipv4Net> pod_cidr;
  Where where;
};

struct Host {
  std::string name;
  std::string rack;
  Where where;
};

struct Namespace {
  std::string name;
  Labels labels;
  Where where;
};

struct ContainerPort {
  std::string name;
  int container_port = 0;
  std::string protocol = "TCP";
};

struct Readiness {
  std::string http_get;  // a path; empty means a TCP connect to `port`
  int port = 0;
};

struct Container {
  std::string name;
  std::string image;                 // a folder under images/, or empty with `command`
  std::vector<std::string> command;  // a program of the machine instead of an image
  std::vector<std::string> args;
  std::vector<ContainerPort> ports;
  std::optional<Readiness> readiness;
  Where where, where_image;
};

struct PodTemplate {
  Labels labels;
  bool host_network = false;
  std::vector<Container> containers;
};

struct Pod {
  std::string name;
  std::string namespace_ = "default";
  std::string node;  // validated: names a node
  PodTemplate spec;
  std::string deployment;  // the owner, empty for a bare pod
  Where where;
};

struct Deployment {
  std::string name;
  std::string namespace_ = "default";
  int replicas = 1;
  std::vector<std::string> nodes;  // empty: all nodes, in node order
  PodTemplate spec;
  Where where;
};

struct ServicePort {
  std::string name;
  int port = 0;
  int target_port = 0;           // 0 when target_port_name is used
  std::string target_port_name;  // a container port's name
  std::optional<int> node_port;  // fixed by the user
  std::string protocol = "TCP";
};

struct Service {
  std::string name;
  std::string namespace_ = "default";
  std::string type = "ClusterIP";
  Labels selector;
  std::string cluster_ip;  // "", "None" or an address
  std::string session_affinity = "None";
  std::string external_traffic_policy = "Cluster";
  std::string internal_traffic_policy = "Cluster";
  std::string external_name;
  std::vector<Ipv4Net> load_balancer_source_ranges;
  std::vector<ServicePort> ports;
  Where where;
};

/// Ingresses, Gateway API objects and network policies are validated for shape
/// (keys, types, references by name) and kept with their location; the layers
/// that build them come with their own issues.
struct NamedObject {
  std::string kind;  // "ingress", "gateway", "httpRoute", "networkPolicy"
  std::string name;
  std::string namespace_ = "default";
  Where where;
};

struct Topology {
  std::string file;
  std::string name;
  Network network;
  std::vector<Rack> racks;
  std::vector<Node> nodes;
  std::vector<Host> hosts;
  std::vector<Namespace> namespaces;  // always holds "default" first
  std::vector<Deployment> deployments;
  std::vector<Pod> pods;  // bare pods and every deployment's pods, expanded
  std::vector<Service> services;
  std::vector<NamedObject> ingresses, gateways, http_routes, network_policies;
};

}  // namespace knl
