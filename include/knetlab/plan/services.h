#pragma once
// Services as the control plane sees them: the addresses Kubernetes would
// allocate (ClusterIP, NodePort, LoadBalancer IP) and the endpoints
// controller (ready pods matching a selector -> endpoints per service port).
// Pure: no kernel, no clock.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "knetlab/topology/model.h"

namespace knl {

struct ServicePortPlan {
  std::string name;  // may be empty on a single-port service
  int port = 0;
  int target_port = 0;           // 0 when target_port_name is used
  std::string target_port_name;  // a container port's name
  int node_port = 0;             // 0 unless NodePort or LoadBalancer
  Protocol protocol = Protocol::tcp;
  bool operator==(const ServicePortPlan&) const = default;
};

/// One ready pod behind one service port.
struct Endpoint {
  Ipv4 ip;
  int port = 0;
  std::string node, pod;  // pod as "namespace/name"
  std::string str() const { return ip.str() + ":" + std::to_string(port); }
  auto operator<=>(const Endpoint&) const = default;
};

/// Endpoints of one service: one list per entry of ServicePlan::ports.
using ServiceEndpoints = std::vector<std::vector<Endpoint>>;

struct ServicePlan {
  std::string name, namespace_;
  ServiceType type = ServiceType::cluster_ip;
  Labels selector;
  bool headless = false;           // clusterIP = "None"
  std::optional<Ipv4> cluster_ip;  // none when headless or ExternalName
  std::optional<Ipv4> load_balancer_ip;
  bool affinity = false;  // sessionAffinity = "ClientIP"
  int affinity_timeout = 10800;
  bool external_local = false, internal_local = false;
  std::vector<Ipv4Net> source_ranges;
  std::string external_name;
  std::vector<ServicePortPlan> ports;
  /// Endpoints that no selector chooses, one list per port: the
  /// `kubernetes` service's control-plane nodes, as the API server writes them.
  ServiceEndpoints fixed_endpoints;

  std::string key() const { return namespace_ + "/" + name; }
  /// kube-proxy writes rules for it (not headless, not ExternalName).
  bool proxied() const { return cluster_ip.has_value(); }
  bool node_ports() const {
    return type == ServiceType::node_port || type == ServiceType::load_balancer;
  }
  bool operator==(const ServicePlan&) const = default;
};

/// Every service's endpoints, by ServicePlan::key().
using EndpointMap = std::map<std::string, ServiceEndpoints>;

/// ClusterIPs from .11 of serviceSubnet in service order (skipping fixed
/// ones), NodePorts from the start of nodePortRange (skipping fixed ones),
/// LoadBalancer IPs from loadBalancerPool. Throws UserError when a range runs out.
std::vector<ServicePlan> plan_services(const Topology& topology);

}  // namespace knl
