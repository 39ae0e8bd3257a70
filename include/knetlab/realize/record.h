#pragma once
// The records that cross a process or file boundary, each a typed struct with
// one JSON mapping (to_json / from_json, found by nlohmann::json):
// - the lab's state record, /run/knetlab/LAB/state.json, written by deploy
//   and by the lab's supervisor after every change, read by every other
//   command (inspect, get, exec, check, vtysh, deploy's comparison);
// - the requests the command line sends the supervisor, and their answers.
// A record that does not parse is a UserError naming what is wrong.

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "knetlab/plan/plan.h"
#include "knetlab/runtime/runtime.h"

namespace knl {

// --- the state record ---------------------------------------------------------

enum class LabPhase { deploying, ready };
template <>
struct EnumNames<LabPhase> {
  static constexpr std::array table{std::pair{LabPhase::deploying, std::string_view("deploying")},
                                    std::pair{LabPhase::ready, std::string_view("ready")}};
};

struct BgpPeerRecord {
  Ipv4 ip;
  uint32_t asn = 0;
  std::string target;  // "node/NAME" or "router/NAME"
  bool operator==(const BgpPeerRecord&) const = default;
};

/// An FRR instance: where its files and vty sockets are.
struct FrrRecord {
  std::string dir;
  uint32_t asn = 0;
  Ipv4 router_id;
  std::vector<BgpPeerRecord> peers;
  bool operator==(const FrrRecord&) const = default;
};

struct NodeRecord {
  std::string name;
  NodeRole role = NodeRole::worker;
  Ipv4 ip;
  Ipv4Net pod_cidr;
  std::string netns, vtep_mac, rack;
  std::optional<FrrRecord> frr;
  bool operator==(const NodeRecord&) const = default;
};

struct HostRecord {
  std::string name;
  Ipv4 ip;
  std::string netns, rack;
  std::vector<std::string> dns_names;
  bool operator==(const HostRecord&) const = default;
};

struct RouterRecord {
  std::string name, netns;
  Ipv4 ip;
  std::optional<Ipv4Net> subnet;  // none for the spine
  std::optional<uint32_t> asn;    // none when it runs no FRR
  std::optional<FrrRecord> frr;
  bool operator==(const RouterRecord&) const = default;
};

struct ContainerRecord {
  std::string name, log;
  std::vector<std::string> argv;
  std::optional<ProcessRecord> process;  // none before it runs
  std::vector<ContainerPort> ports;
  bool operator==(const ContainerRecord&) const = default;
};

struct PodRecord {
  std::string name, namespace_, node;
  Ipv4 ip;
  Labels labels;
  std::string netns;
  bool host_network = false;
  std::string deployment, dir;
  bool ready = true;  // as the controller last saw it (containers up, probes passing)
  std::vector<ContainerRecord> containers;
  std::optional<ProcessRecord> sandbox;  // none before it runs
  std::string key() const { return namespace_ + "/" + name; }
  bool operator==(const PodRecord&) const = default;
};

struct ServicePortRecord {
  std::string name;
  int port = 0;
  Protocol protocol = Protocol::tcp;
  int target_port = 0;           // 0 when target_port_name is used
  std::string target_port_name;  // a container port's name
  std::optional<int> node_port;
  bool operator==(const ServicePortRecord&) const = default;
};

struct EndpointRecord {
  Ipv4 ip;
  int port = 0;
  std::string port_name;
  Protocol protocol = Protocol::tcp;
  std::string node, pod;  // pod as "namespace/name"
  bool operator==(const EndpointRecord&) const = default;
};

struct ServiceRecord {
  std::string name, namespace_;
  ServiceType type = ServiceType::cluster_ip;
  bool headless = false;
  std::optional<Ipv4> cluster_ip;  // none when headless or ExternalName
  std::vector<ServicePortRecord> ports;
  Labels selector;
  SessionAffinity session_affinity = SessionAffinity::none;
  TrafficPolicy external_traffic_policy = TrafficPolicy::cluster;
  TrafficPolicy internal_traffic_policy = TrafficPolicy::cluster;
  std::optional<Ipv4> load_balancer_ip;
  std::vector<Ipv4Net> load_balancer_source_ranges;
  std::string external_name;
  std::vector<EndpointRecord> endpoints;  // one per ready pod and service port
  std::string key() const { return namespace_ + "/" + name; }
  bool operator==(const ServiceRecord&) const = default;
};

struct NetworkRecord {
  Cni cni = Cni::vxlan;
  ProxyMode kube_proxy_mode = ProxyMode::nftables;
  Ipv4Net pod_subnet, service_subnet;
  LoadBalancerMode load_balancer_mode = LoadBalancerMode::cloud;
  std::string dns_domain;
  bool operator==(const NetworkRecord&) const = default;
};

struct LabRecord {
  std::string name;
  std::string file;  // the topology file, absolute
  LabPhase phase = LabPhase::deploying;
  NetworkRecord network;
  std::string lan_netns;
  Ipv4 lan_gateway;
  std::vector<NodeRecord> nodes;
  std::vector<HostRecord> hosts;
  std::vector<RouterRecord> routers;
  std::vector<PodRecord> pods;
  std::vector<ServiceRecord> services;
  std::map<std::string, Labels> namespaces;  // with kubernetes.io/metadata.name
  std::vector<NetworkPolicy> network_policies;
  std::vector<Ingress> ingresses;
  std::vector<Gateway> gateways;
  std::vector<HttpRoute> http_routes;
  std::string lb_netns;  // the cloud load balancer's, or empty
  Ipv4 lb_ip;
  bool operator==(const LabRecord&) const = default;
};

/// The record of `plan` with the processes of its pods (by pod key) and, when
/// given, the endpoints and the ready pods; without them every pod counts as
/// ready and no service has endpoints.
LabRecord make_record(const Plan& plan, const std::map<std::string, PodProcesses>& pods,
                      LabPhase phase, const EndpointMap* endpoints = nullptr,
                      const std::set<std::string>* ready_pods = nullptr);

/// What two deploys of one topology agree on: `record` without its
/// processes, readiness, endpoints and file.
LabRecord desired_part(LabRecord record);

/// Writes `r` to `out` as the JSON document from_json reads, its pods and
/// services one at a time and one to a line: a big lab's record as one json
/// tree was the peak of the supervisor's memory.
void write_record(std::ostream& out, const LabRecord& r);
void from_json(const nlohmann::json& j, LabRecord& r);
/// A network policy as Kubernetes writes one's spec (record_policy.cc).
void to_json(nlohmann::json& j, const NetworkPolicy& p);
void from_json(const nlohmann::json& j, NetworkPolicy& p);
/// An ingress as Kubernetes writes one, with what its annotations ask of
/// the controller (record_ingress.cc).
void to_json(nlohmann::json& j, const Ingress& in);
void from_json(const nlohmann::json& j, Ingress& in);
/// Gateway API objects as Kubernetes writes them (record_gateway.cc).
void to_json(nlohmann::json& j, const Gateway& g);
void from_json(const nlohmann::json& j, Gateway& g);
void to_json(nlohmann::json& j, const HttpRoute& r);
void from_json(const nlohmann::json& j, HttpRoute& r);

// --- requests to the lab's supervisor, and their results ------------------------

struct ScaleRequest {
  std::string deployment;  // "NAME" or "NAMESPACE/NAME"
  int replicas = 0;
};
struct DeleteRequest {
  std::string pod;  // "NAME" or "NAMESPACE/NAME"
};
struct ApplyRequest {
  std::string file;  // absolute
};
/// The last pass's figures (scripts/bench).
struct SyncRequest {};
/// destroy: from now on only reap; with `stop`, kill the lab's processes first.
struct QuiesceRequest {
  bool stop = false;
};
using Request =
    std::variant<ScaleRequest, DeleteRequest, ApplyRequest, SyncRequest, QuiesceRequest>;

nlohmann::json request_json(const Request& request);
/// UserError for an unknown or malformed request.
Request parse_request(const nlohmann::json& j);

struct ScaleResult {
  std::string deployment;  // "namespace/name"
  int replicas = 0;
  std::vector<std::string> added, removed;  // pod keys
  double sync_seconds = 0;
};
struct DeleteResult {
  std::string deleted;                     // pod key
  std::optional<std::string> replacement;  // made by its deployment
  double sync_seconds = 0;
};
struct ApplyResult {
  std::vector<std::string> nodes, hosts, routers, pods;  // what was added
  std::vector<std::string> relabelled;                   // pod keys
  bool policies = false;  // the network policies or namespace labels changed
  double seconds = 0;
  bool ingresses = false;  // the ingresses changed
};
struct SyncResult {
  double sync_seconds = 0;
  size_t services = 0;
};
struct QuiesceResult {
  std::optional<size_t> stopped;  // processes killed, with `stop`
};

void to_json(nlohmann::json& j, const ScaleResult& r);
void from_json(const nlohmann::json& j, ScaleResult& r);
void to_json(nlohmann::json& j, const DeleteResult& r);
void from_json(const nlohmann::json& j, DeleteResult& r);
void to_json(nlohmann::json& j, const ApplyResult& r);
void from_json(const nlohmann::json& j, ApplyResult& r);
void to_json(nlohmann::json& j, const SyncResult& r);
void from_json(const nlohmann::json& j, SyncResult& r);
void to_json(nlohmann::json& j, const QuiesceResult& r);
void from_json(const nlohmann::json& j, QuiesceResult& r);

/// The supervisor's answer line: a result, or a refusal (a user error, exit
/// status 1, or a system failure, 2).
struct Answer {
  bool ok = false;
  bool user_error = false;
  std::string error;
  nlohmann::json result;  // the request's result type, when ok
};
void to_json(nlohmann::json& j, const Answer& a);
void from_json(const nlohmann::json& j, Answer& a);

}  // namespace knl
