#pragma once
// The topology parser's parts, shared by parse.cc (the lab, its network and
// machines), parse_workloads.cc (pods, deployments, services),
// parse_objects.cc (ingresses, gateways, routes) and parse_policies.cc
// (network policies). Private to emulator/topology/.

#include <map>
#include <string>
#include <vector>

#include "knetlab/topology/parse.h"
#include "knetlab/topology/schema.h"

namespace knl::parsing {

inline constexpr size_t kLabNameMax = 12;
inline constexpr size_t kObjectNameMax = 40;  // node, host, rack, namespace, pod, container names

/// The table's "name", checked as a kernel and file name part.
std::string name_of(const TableReader& t, size_t max_length = kObjectNameMax);

/// Names that must be unique within one scope; reports the second occurrence.
class UniqueNames {
 public:
  explicit UniqueNames(std::string what) : what_(std::move(what)) {}
  void add(const TableReader& t, const std::string& name);
  bool contains(const std::string& name) const { return seen_.count(name) > 0; }
  std::vector<std::string> names() const;

 private:
  std::string what_;
  std::map<std::string, Where> seen_;
};

/// Whether `text` can be written into an nginx configuration as it is: no
/// space, control character, quote, ';', '{', '}' or '\\'.
bool fits_nginx(const std::string& text);
/// Letters, digits, '-', '_' and '.', 1..`max` of them.
bool is_token(const std::string& text, size_t max);

/// Refuses `value` of `key` unless `known` has it, naming the nearest.
void require_known(const TableReader& t, const std::string& key, const std::string& value,
                   const UniqueNames& known, const std::string& what);

class Parser {
 public:
  explicit Parser(const TomlValue& root, std::string file) : root_(root, ""), file_(file) {}
  Topology run();

 private:
  void network();
  CniConfig cni_config(const TableReader& c);
  void load_balancer_pool(const TableReader& t);
  void racks();
  std::string rack_of(const TableReader& t);
  void nodes();
  void hosts();
  void namespaces();
  std::string namespace_of(const TableReader& t);
  Container container(const TableReader& t, UniqueNames& names);
  PodTemplate pod_template(const TableReader& t);
  DnsConfig dns_config(const TableReader& t);
  // Names `namespace/name` as a pod's, refusing it when a bare pod or a
  // deployment's replica (`DEPLOYMENT-INDEX`, as the plan names them) has it.
  void claim_pod_name(const TableReader& t, const std::string& ns, const std::string& name);
  void workloads();
  void services();
  void ingresses();
  // Gateway API: gateways, their listeners, routes and what they name.
  void gateways();
  void http_routes();
  ParentRef parent_ref(const TableReader& route, const TomlValue& value);
  RouteMatch route_match(const TableReader& t);
  RouteFilter route_filter(const TableReader& t, const RouteRule& rule, const std::string& ns);
  BackendRef backend_ref(const TableReader& t, const std::string& ns, bool weighted);
  void route_hostname(const TableReader& t, const std::string& key, const std::string& host);
  // Ingresses: the annotations ingress-nginx serves (a warning for any
  // other of its prefix), hosts, paths and the service ports they name.
  IngressAnnotations ingress_annotations(const TableReader& t, const Labels& annotations);
  void ingress_host(const TableReader& t, const std::string& key, const std::string& host);
  void ingress_path(const TableReader& t, const IngressPath& path, bool use_regex);
  IngressBackend ingress_backend(const TableReader& t, const std::string& ns);
  void network_policies();
  void service_ref(const TableReader& t, const std::string& key, const std::string& ns);
  // Warns when a named targetPort is declared by none of the pods `s` selects.
  void target_port_declared(const TableReader& t, const Service& s, const ServicePort& port);
  // Address space checks that need every node and host.
  void capacity();
  // The routed parts: racks, the spine's fabric and BGP-announced addresses.
  void routing();

  TableReader root_;
  std::string file_;
  Topology topo_;
  Where pool_where_;
  UniqueNames rack_names_{"rack"}, machine_names_{"node or host"}, node_names_{"node"},
      namespace_names_{"namespace"}, service_names_{"service"};
  std::map<std::string, Where> pod_where_;
};

}  // namespace knl::parsing
