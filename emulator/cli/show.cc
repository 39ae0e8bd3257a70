// inspect and get: what the state record and the running processes say.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/plan/dns.h"
#include "knetlab/plan/ingress.h"
#include "knetlab/util/error.h"
#include "policies.h"

namespace knl::cli {

using nlohmann::json;

namespace {

// Live view of one pod: how many containers run.
std::pair<size_t, size_t> containers_running(const PodRecord& pod) {
  size_t up = 0;
  for (const auto& c : pod.containers)
    if (c.process && process_alive(*c.process)) ++up;
  return {up, pod.containers.size()};
}

// Ready as the controller last saw it (readiness probes), and running now.
bool pod_ready(const PodRecord& pod) {
  auto [up, total] = containers_running(pod);
  return up == total && pod.ready;
}

json frr_view(const std::optional<FrrRecord>& frr) {
  if (!frr) return nullptr;
  json peers = json::array();
  for (const auto& p : frr->peers)
    peers.push_back({{"ip", p.ip.str()}, {"asn", p.asn}, {"target", p.target}});
  return {{"dir", frr->dir},
          {"asn", frr->asn},
          {"routerID", frr->router_id.str()},
          {"peers", std::move(peers)}};
}

json pod_view(const PodRecord& pod) {
  return {{"name", pod.name},   {"namespace", pod.namespace_}, {"node", pod.node},
          {"ip", pod.ip.str()}, {"labels", pod.labels},        {"ready", pod_ready(pod)},
          {"netns", pod.netns}};
}

std::string cluster_ip_text(const ServiceRecord& s) {
  return s.headless ? "None" : s.cluster_ip ? s.cluster_ip->str() : "<none>";
}

json service_view(const ServiceRecord& s) {
  json ports = json::array(), endpoints = json::array();
  for (const auto& p : s.ports)
    ports.push_back({{"name", p.name},
                     {"port", p.port},
                     {"targetPort",
                      p.target_port_name.empty() ? json(p.target_port) : json(p.target_port_name)},
                     {"nodePort", p.node_port ? json(*p.node_port) : json(nullptr)},
                     {"protocol", enum_name(p.protocol)}});
  for (const auto& e : s.endpoints) endpoints.push_back(fmt::format("{}:{}", e.ip.str(), e.port));
  return {{"name", s.name},
          {"namespace", s.namespace_},
          {"type", enum_name(s.type)},
          {"clusterIP", s.headless     ? json("None")
                        : s.cluster_ip ? json(s.cluster_ip->str())
                                       : json(nullptr)},
          {"ports", std::move(ports)},
          {"loadBalancerIP", s.load_balancer_ip ? json(s.load_balancer_ip->str()) : json(nullptr)},
          {"endpoints", std::move(endpoints)}};
}

std::string ports_text(const ServiceRecord& s) {
  std::vector<std::string> out;
  for (const auto& p : s.ports) {
    auto text = std::to_string(p.port);
    if (p.node_port) text += ":" + std::to_string(*p.node_port);
    out.push_back(text + "/" + std::string(enum_name(p.protocol)));
  }
  return out.empty() ? "<none>" : fmt::format("{}", fmt::join(out, ","));
}

std::string join_or_none(const std::vector<std::string>& v) {
  return v.empty() ? std::string("<none>") : fmt::format("{}", fmt::join(v, ","));
}

void print_services(const LabRecord& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"});
  if (wide) rows.back().push_back("SELECTOR");
  for (const auto& s : state.services) {
    if (!name.empty() && s.name != name) continue;
    auto external = !s.external_name.empty() ? s.external_name
                    : s.load_balancer_ip     ? s.load_balancer_ip->str()
                                             : "<none>";
    rows.push_back({s.namespace_, s.name, std::string(enum_name(s.type)), cluster_ip_text(s),
                    external, ports_text(s)});
    if (wide) {
      std::vector<std::string> selector;
      for (const auto& [k, v] : s.selector) selector.push_back(k + "=" + v);
      rows.back().push_back(join_or_none(selector));
    }
  }
  print_table(rows);
}

void print_endpoints(const LabRecord& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "ENDPOINTS"});
  if (wide) rows.back().insert(rows.back().end(), {"PODS", "NODES"});
  for (const auto& s : state.services) {
    if (!name.empty() && s.name != name) continue;
    if (s.type == ServiceType::external_name) continue;
    std::vector<std::string> eps, pods, nodes;
    for (const auto& e : s.endpoints) {
      eps.push_back(fmt::format("{}:{}", e.ip.str(), e.port));
      pods.push_back(e.pod);
      nodes.push_back(e.node);
    }
    rows.push_back({s.namespace_, s.name, join_or_none(eps)});
    if (wide) rows.back().insert(rows.back().end(), {join_or_none(pods), join_or_none(nodes)});
  }
  print_table(rows);
}

json node_view(const NodeRecord& n) {
  return {{"name", n.name},        {"role", enum_name(n.role)},
          {"ip", n.ip.str()},      {"podCIDR", n.pod_cidr.str()},
          {"netns", n.netns},      {"rack", n.rack},
          {"frr", frr_view(n.frr)}};
}

json host_view(const HostRecord& h) {
  return {{"name", h.name},
          {"ip", h.ip.str()},
          {"netns", h.netns},
          {"rack", h.rack},
          {"dnsNames", h.dns_names}};
}

json router_view(const RouterRecord& r) {
  return {{"name", r.name},
          {"ip", r.ip.str()},
          {"subnet", r.subnet ? json(r.subnet->str()) : json(nullptr)},
          {"asn", r.asn ? json(*r.asn) : json(nullptr)},
          {"netns", r.netns},
          {"frr", frr_view(r.frr)}};
}

void print_routers(const LabRecord& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "IP", "SUBNET", "ASN", "BGP-PEERS"});
  if (wide) rows.back().push_back("NETNS");
  for (const auto& r : state.routers) {
    if (!name.empty() && r.name != name) continue;
    std::vector<std::string> peers;
    if (r.frr)
      for (const auto& p : r.frr->peers) peers.push_back(p.target);
    rows.push_back({r.name, r.ip.str(), r.subnet ? r.subnet->str() : "-",
                    r.asn ? std::to_string(*r.asn) : "-", join_or_none(peers)});
    if (wide) rows.back().push_back(r.netns);
  }
  print_table(rows);
}

json network_view(const LabRecord& state) {
  return {{"cni", enum_name(state.network.cni)},
          {"kubeProxyMode", enum_name(state.network.kube_proxy_mode)},
          {"podSubnet", state.network.pod_subnet.str()},
          {"serviceSubnet", state.network.service_subnet.str()},
          {"loadBalancerMode", enum_name(state.network.load_balancer_mode)},
          {"dnsDomain", state.network.dns_domain}};
}

json ingress_view(const Ingress& in, const std::string& controller) {
  json out = in;
  out["class"] = in.class_name;
  out["address"] = in.served() ? controller : "";
  return out;
}

// get ingresses: as kubectl lists them; wide adds each rule's paths.
void print_ingresses(const LabRecord& state, bool wide, const std::string& name,
                     const std::string& controller) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS"});
  if (wide) rows.back().push_back("RULES");
  for (const auto& in : state.ingresses) {
    if (!name.empty() && in.name != name) continue;
    std::vector<std::string> hosts, rules;
    for (const auto& r : in.rules) {
      hosts.push_back(r.host.empty() ? "*" : r.host);
      for (const auto& p : r.paths)
        rules.push_back(
            fmt::format("{}{} ({}) -> {}", r.host, p.path, enum_name(p.type), p.backend.str()));
    }
    if (in.default_backend) rules.push_back("default -> " + in.default_backend->str());
    auto address = in.served() ? controller : "";
    rows.push_back({in.namespace_, in.name, in.class_name,
                    hosts.empty() ? "*" : fmt::format("{}", fmt::join(hosts, ",")),
                    address.empty() ? "<none>" : address, in.tls.empty() ? "80" : "80, 443"});
    if (wide) rows.back().push_back(fmt::format("{}", fmt::join(rules, "; ")));
  }
  print_table(rows);
}

json gateway_view(const LabRecord& state, const Gateway& g) {
  json out = g;
  out["class"] = g.class_name;
  auto address = gateway_address(state, g);
  out["addresses"] = json::array();
  if (!address.empty()) out["addresses"].push_back({{"type", "IPAddress"}, {"value", address}});
  out["programmed"] = !address.empty();
  return out;
}

std::string condition(bool value, RouteReason reason) {
  return fmt::format("{} ({})", value ? "True" : "False", enum_name(reason));
}

// `gateways`: every gateway of the lab, those of namespaces not listed too.
json route_view(const LabRecord& state, const std::vector<Gateway>& gateways, const HttpRoute& r) {
  json out = r;
  auto status = route_status(gateways, r, backend_exists(state));
  bool accepted = !status.empty(), resolved = true;
  json parents = json::array();
  for (const auto& s : status) {
    accepted = accepted && s.accepted;
    resolved = resolved && s.resolved;
    json ref = {{"name", s.parent.name}, {"namespace", s.parent.namespace_}};
    if (!s.parent.section.empty()) ref["sectionName"] = s.parent.section;
    parents.push_back({{"parentRef", ref},
                       {"conditions",
                        {{{"type", "Accepted"},
                          {"status", s.accepted ? "True" : "False"},
                          {"reason", enum_name(s.accepted_reason)}},
                         {{"type", "ResolvedRefs"},
                          {"status", s.resolved ? "True" : "False"},
                          {"reason", enum_name(s.resolved_reason)}}}}});
  }
  out["parents"] = out["parentRefs"];
  out["accepted"] = accepted;
  out["resolvedRefs"] = resolved;
  out["status"] = {{"parents", parents}};
  return out;
}

// get gateways: as kubectl lists them; wide adds the listeners.
void print_gateways(const LabRecord& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "CLASS", "ADDRESS", "PROGRAMMED", "ROUTES"});
  if (wide) rows.back().push_back("LISTENERS");
  for (const auto& g : state.gateways) {
    if (!name.empty() && g.name != name) continue;
    auto address = gateway_address(state, g);
    std::set<const HttpRoute*> routes;
    for (const auto& a : gateway_attachments(g, state.http_routes)) routes.insert(a.route);
    std::vector<std::string> listeners;
    for (const auto& l : g.listeners)
      listeners.push_back(fmt::format("{} {}/{}{}", l.name, l.port, enum_name(l.protocol),
                                      l.hostname.empty() ? "" : " " + l.hostname));
    rows.push_back({g.namespace_, g.name, g.class_name, address.empty() ? "<none>" : address,
                    address.empty() ? "False" : "True", std::to_string(routes.size())});
    if (wide) rows.back().push_back(fmt::format("{}", fmt::join(listeners, "; ")));
  }
  print_table(rows);
}

// get httproutes: hostnames, parents and their conditions; wide adds the rules.
void print_http_routes(const LabRecord& state, const std::vector<Gateway>& gateways, bool wide,
                       const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "HOSTNAMES", "PARENTS", "ACCEPTED", "RESOLVEDREFS"});
  if (wide) rows.back().push_back("RULES");
  for (const auto& r : state.http_routes) {
    if (!name.empty() && r.name != name) continue;
    std::vector<std::string> parents, accepted, resolved, rules;
    for (const auto& s : route_status(gateways, r, backend_exists(state))) {
      parents.push_back(fmt::format("{}/{}{}", s.parent.namespace_, s.parent.name,
                                    s.parent.section.empty() ? "" : "/" + s.parent.section));
      accepted.push_back(condition(s.accepted, s.accepted_reason));
      resolved.push_back(condition(s.resolved, s.resolved_reason));
    }
    for (const auto& rule : r.rules) {
      std::vector<std::string> matches, backends;
      for (const auto& m : rule.matches) {
        auto text = fmt::format("{}{} {}", m.method.empty() ? "" : m.method + " ",
                                enum_name(m.path_type), m.path);
        for (const auto& h : m.headers) text += fmt::format(" {}={}", h.name, h.value);
        for (const auto& q : m.query_params) text += fmt::format(" ?{}={}", q.name, q.value);
        matches.push_back(text);
      }
      for (const auto& b : rule.backends)
        backends.push_back(fmt::format("{}:{} ({})", b.name, b.port, b.weight));
      for (const auto& f : rule.filters) backends.push_back(std::string(enum_name(f.type)));
      rules.push_back(
          fmt::format("{} -> {}", fmt::join(matches, " | "), fmt::join(backends, ", ")));
    }
    auto none = [](const std::vector<std::string>& v) {
      return v.empty() ? std::string("<none>") : fmt::format("{}", fmt::join(v, ","));
    };
    rows.push_back({r.namespace_, r.name, r.hostnames.empty() ? "*" : none(r.hostnames),
                    none(parents), none(accepted), none(resolved)});
    if (wide) rows.back().push_back(fmt::format("{}", fmt::join(rules, "; ")));
  }
  print_table(rows);
}

json inspect_json(const LabRecord& state) {
  json out = {{"name", state.name},      {"network", network_view(state)},
              {"nodes", json::array()},  {"hosts", json::array()},
              {"pods", json::array()},   {"services", json::array()},
              {"routers", json::array()}};
  for (const auto& n : state.nodes) out["nodes"].push_back(node_view(n));
  for (const auto& h : state.hosts) out["hosts"].push_back(host_view(h));
  for (const auto& r : state.routers) out["routers"].push_back(router_view(r));
  for (const auto& p : state.pods) out["pods"].push_back(pod_view(p));
  for (const auto& s : state.services) out["services"].push_back(service_view(s));
  out["networkPolicies"] = state.network_policies;
  out["ingresses"] = json::array();
  for (const auto& in : state.ingresses)
    out["ingresses"].push_back(ingress_view(in, ingress_controller_address(state)));
  out["gateways"] = json::array();
  for (const auto& g : state.gateways) out["gateways"].push_back(gateway_view(state, g));
  out["httpRoutes"] = json::array();
  for (const auto& r : state.http_routes)
    out["httpRoutes"].push_back(route_view(state, state.gateways, r));
  return out;
}

void print_nodes(const LabRecord& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "STATUS", "ROLES", "INTERNAL-IP", "POD-CIDR"});
  if (wide) rows.back().insert(rows.back().end(), {"VTEP-MAC", "NETNS"});
  for (const auto& n : state.nodes) {
    if (!name.empty() && n.name != name) continue;
    rows.push_back({n.name, "Ready", std::string(enum_name(n.role)), n.ip.str(), n.pod_cidr.str()});
    if (wide) rows.back().insert(rows.back().end(), {n.vtep_mac, n.netns});
  }
  print_table(rows);
}

void print_pods(const LabRecord& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "READY", "STATUS", "IP", "NODE"});
  if (wide) rows.back().insert(rows.back().end(), {"PID", "NETNS"});
  for (const auto& p : state.pods) {
    if (!name.empty() && p.name != name) continue;
    auto [up, total] = containers_running(p);
    rows.push_back({p.namespace_, p.name,
                    fmt::format("{}/{}", pod_ready(p) ? up : std::min(up, total - 1), total),
                    up == total ? "Running" : "Error", p.ip.str(), p.node});
    if (wide)
      rows.back().insert(rows.back().end(),
                         {p.sandbox ? std::to_string(p.sandbox->pid) : "-", p.netns});
  }
  print_table(rows);
}

void print_hosts(const LabRecord& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "IP"});
  if (wide) rows.back().push_back("NETNS");
  for (const auto& h : state.hosts) {
    if (!name.empty() && h.name != name) continue;
    rows.push_back({h.name, h.ip.str()});
    if (wide) rows.back().push_back(h.netns);
  }
  print_table(rows);
}

}  // namespace

int inspect(const ListOptions& options) {
  auto state = read_state(pick_lab(options.lab));
  if (options.format == "json") {
    fmt::print("{}\n", inspect_json(state).dump(2));
    return 0;
  }
  fmt::print("Lab {}  (cni {}, pods {}, services {})\n\nNODES\n", state.name,
             enum_name(state.network.cni), state.network.pod_subnet.str(),
             state.network.service_subnet.str());
  print_nodes(state, true, "");
  fmt::print("\nPODS\n");
  print_pods(state, true, "");
  if (!state.hosts.empty()) {
    fmt::print("\nHOSTS\n");
    print_hosts(state, true, "");
  }
  if (!state.routers.empty()) {
    fmt::print("\nROUTERS\n");
    print_routers(state, true, "");
  }
  if (!state.services.empty()) {
    fmt::print("\nSERVICES\n");
    print_services(state, true, "");
    fmt::print("\nENDPOINTS\n");
    print_endpoints(state, true, "");
  }
  if (!state.network_policies.empty()) {
    fmt::print("\nNETWORK POLICIES\n");
    print_network_policies(state, true, "");
  }
  if (!state.ingresses.empty()) {
    fmt::print("\nINGRESSES\n");
    print_ingresses(state, true, "", ingress_controller_address(state));
  }
  if (!state.gateways.empty()) {
    fmt::print("\nGATEWAYS\n");
    print_gateways(state, true, "");
    fmt::print("\nHTTPROUTES\n");
    print_http_routes(state, state.gateways, true, "");
  }
  return 0;
}

namespace {

enum class Kind {
  nodes,
  pods,
  hosts,
  routers,
  services,
  endpoints,
  network_policies,
  ingresses,
  gateways,
  http_routes
};

// The names of one kind, for "no such object" messages.
std::vector<std::string> names_of(const LabRecord& state, Kind kind) {
  std::vector<std::string> out;
  auto add = [&](const auto& list) {
    for (const auto& x : list) out.push_back(x.name);
  };
  switch (kind) {
    case Kind::nodes:
      add(state.nodes);
      break;
    case Kind::pods:
      add(state.pods);
      break;
    case Kind::hosts:
      add(state.hosts);
      break;
    case Kind::routers:
      add(state.routers);
      break;
    case Kind::services:
    case Kind::endpoints:
      add(state.services);
      break;
    case Kind::network_policies:
      add(state.network_policies);
      break;
    case Kind::ingresses:
      add(state.ingresses);
      break;
    case Kind::gateways:
      add(state.gateways);
      break;
    case Kind::http_routes:
      add(state.http_routes);
      break;
  }
  return out;
}

const char* singular(Kind kind) {
  switch (kind) {
    case Kind::nodes:
      return "node";
    case Kind::pods:
      return "pod";
    case Kind::hosts:
      return "host";
    case Kind::routers:
      return "router";
    case Kind::services:
      return "service";
    case Kind::endpoints:
      return "endpoint";
    case Kind::network_policies:
      return "network policy";
    case Kind::ingresses:
      return "ingress";
    case Kind::gateways:
      return "gateway";
    case Kind::http_routes:
      return "httproute";
  }
  return "object";
}

}  // namespace

int get(const std::string& kind_word, const std::string& name, const ListOptions& options) {
  static const std::map<std::string, Kind> kinds = {{"nodes", Kind::nodes},
                                                    {"node", Kind::nodes},
                                                    {"no", Kind::nodes},
                                                    {"pods", Kind::pods},
                                                    {"pod", Kind::pods},
                                                    {"po", Kind::pods},
                                                    {"hosts", Kind::hosts},
                                                    {"host", Kind::hosts},
                                                    {"routers", Kind::routers},
                                                    {"router", Kind::routers},
                                                    {"services", Kind::services},
                                                    {"service", Kind::services},
                                                    {"svc", Kind::services},
                                                    {"endpoints", Kind::endpoints},
                                                    {"ep", Kind::endpoints},
                                                    {"endpointslices", Kind::endpoints},
                                                    {"networkpolicies", Kind::network_policies},
                                                    {"networkpolicy", Kind::network_policies},
                                                    {"netpol", Kind::network_policies},
                                                    {"ingresses", Kind::ingresses},
                                                    {"ingress", Kind::ingresses},
                                                    {"ing", Kind::ingresses},
                                                    {"gateways", Kind::gateways},
                                                    {"gateway", Kind::gateways},
                                                    {"gtw", Kind::gateways},
                                                    {"httproutes", Kind::http_routes},
                                                    {"httproute", Kind::http_routes}};
  auto it = kinds.find(kind_word);
  if (it == kinds.end())
    throw UserError(
        fmt::format("unknown kind \"{}\"; try nodes, pods, services, endpoints, "
                    "networkpolicies, ingresses, gateways, httproutes, hosts or routers",
                    kind_word));
  const Kind kind = it->second;
  auto state = read_state(pick_lab(options.lab));
  // Read before the cluster's own namespaces are filtered away.
  const auto controller = ingress_controller_address(state);
  // As kubectl lists, without the cluster's own namespace unless asked.
  auto shown = [&](const std::string& ns) {
    return !options.namespace_.empty() ? ns == options.namespace_
                                       : options.all_namespaces || !is_cluster_namespace(ns);
  };
  std::erase_if(state.pods, [&](const PodRecord& p) { return !shown(p.namespace_); });
  std::erase_if(state.services, [&](const ServiceRecord& s) { return !shown(s.namespace_); });
  std::erase_if(state.network_policies,
                [&](const NetworkPolicy& p) { return !shown(p.namespace_); });
  std::erase_if(state.ingresses, [&](const Ingress& in) { return !shown(in.namespace_); });
  // A route's status needs its parent gateways in any namespace.
  const auto gateways = state.gateways;
  std::erase_if(state.gateways, [&](const Gateway& g) { return !shown(g.namespace_); });
  std::erase_if(state.http_routes, [&](const HttpRoute& r) { return !shown(r.namespace_); });
  if (!name.empty()) {
    auto names = names_of(state, kind);
    if (std::find(names.begin(), names.end(), name) == names.end())
      throw UserError(
          fmt::format("no {} named \"{}\" in lab \"{}\"", singular(kind), name, state.name));
  }
  if (options.format == "json") {
    json items = json::array();
    auto add = [&](const auto& list, auto&& view) {
      for (const auto& x : list)
        if (name.empty() || x.name == name) items.push_back(view(x));
    };
    switch (kind) {
      case Kind::nodes:
        add(state.nodes, node_view);
        break;
      case Kind::pods:
        add(state.pods, pod_view);
        break;
      case Kind::hosts:
        add(state.hosts, host_view);
        break;
      case Kind::routers:
        add(state.routers, router_view);
        break;
      case Kind::services:
        add(state.services, service_view);
        break;
      case Kind::endpoints:
        add(state.services, [](const ServiceRecord& s) {
          json eps = json::array();
          for (const auto& e : s.endpoints)
            eps.push_back({{"ip", e.ip.str()},
                           {"port", e.port},
                           {"portName", e.port_name},
                           {"protocol", enum_name(e.protocol)},
                           {"node", e.node},
                           {"pod", e.pod}});
          return json{{"name", s.name}, {"namespace", s.namespace_}, {"endpoints", eps}};
        });
        break;
      case Kind::network_policies:
        add(state.network_policies, [](const NetworkPolicy& p) { return json(p); });
        break;
      case Kind::ingresses:
        add(state.ingresses, [&](const Ingress& in) { return ingress_view(in, controller); });
        break;
      case Kind::gateways:
        add(state.gateways, [&](const Gateway& g) { return gateway_view(state, g); });
        break;
      case Kind::http_routes:
        add(state.http_routes, [&](const HttpRoute& r) { return route_view(state, gateways, r); });
        break;
    }
    fmt::print("{}\n", json{{"kind", "List"}, {"items", items}}.dump(2));
    return 0;
  }
  bool wide = options.format == "wide";
  switch (kind) {
    case Kind::nodes:
      print_nodes(state, wide, name);
      break;
    case Kind::pods:
      print_pods(state, wide, name);
      break;
    case Kind::hosts:
      print_hosts(state, wide, name);
      break;
    case Kind::routers:
      print_routers(state, wide, name);
      break;
    case Kind::services:
      print_services(state, wide, name);
      break;
    case Kind::endpoints:
      print_endpoints(state, wide, name);
      break;
    case Kind::network_policies:
      print_network_policies(state, wide, name);
      break;
    case Kind::ingresses:
      print_ingresses(state, wide, name, controller);
      break;
    case Kind::gateways:
      print_gateways(state, wide, name);
      break;
    case Kind::http_routes:
      print_http_routes(state, gateways, wide, name);
      break;
  }
  return 0;
}

}  // namespace knl::cli
