// describe: one object in detail, as kubectl describe shows it, with what
// the lab knows besides (the pods a policy selects, its rules' counters).

#include <fmt/format.h>

#include <algorithm>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/util/error.h"
#include "policies.h"

namespace knl::cli {

namespace {

enum class DescribeKind { pod, service, network_policy, ingress, gateway, http_route };

std::string or_unset(const std::string& name) {
  return name.empty() ? "<unset>" : name;
}

std::string labels_text(const Labels& labels) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : labels) parts.push_back(k + "=" + v);
  return parts.empty() ? "<none>" : fmt::format("{}", fmt::join(parts, ","));
}

// The one object of `list` named `name` in `ns` (any namespace when empty,
// if only one has it).
template <typename T>
const T& find_one(const std::vector<T>& list, const std::string& ns, const std::string& name,
                  const char* what) {
  std::vector<const T*> found;
  for (const auto& x : list)
    if (x.name == name && (ns.empty() || x.namespace_ == ns)) found.push_back(&x);
  if (found.empty())
    throw UserError(fmt::format("no {} named \"{}\"{}", what, name,
                                ns.empty() ? "" : " in namespace \"" + ns + "\""));
  if (found.size() > 1) {
    std::vector<std::string> namespaces;
    for (const auto* x : found) namespaces.push_back(x->namespace_);
    throw UserError(fmt::format("{} \"{}\" is in several namespaces ({}); name one with -n", what,
                                name, fmt::join(namespaces, ", ")));
  }
  return *found.front();
}

void describe_pod(const PodRecord& p) {
  fmt::print("Name:         {}\nNamespace:    {}\nNode:         {}\nLabels:       {}\n", p.name,
             p.namespace_, p.node, labels_text(p.labels));
  fmt::print("IP:           {}\nHost Network: {}\nReady:        {}\nNetns:        {}\n", p.ip.str(),
             p.host_network ? "true" : "false", p.ready ? "True" : "False", p.netns);
  if (!p.deployment.empty()) fmt::print("Controlled By: deployment/{}\n", p.deployment);
  fmt::print("Containers:\n");
  for (const auto& c : p.containers) {
    fmt::print("  {}:\n    Command: {}\n", c.name, fmt::join(c.argv, " "));
    for (const auto& port : c.ports)
      fmt::print("    Port:    {}/{}{}\n", port.container_port, enum_name(port.protocol),
                 port.name.empty() ? "" : " (" + port.name + ")");
    bool running = c.process && process_alive(*c.process);
    fmt::print("    State:   {}\n", running ? fmt::format("Running (pid {})", c.process->pid)
                                            : std::string("Not running"));
    fmt::print("    Log:     {}\n", c.log);
  }
}

void describe_service(const ServiceRecord& s) {
  fmt::print("Name:                     {}\nNamespace:                {}\n", s.name, s.namespace_);
  fmt::print("Selector:                 {}\nType:                     {}\n",
             labels_text(s.selector), enum_name(s.type));
  fmt::print("IP:                       {}\n", s.headless     ? "None"
                                               : s.cluster_ip ? s.cluster_ip->str()
                                                              : "<none>");
  if (s.load_balancer_ip) fmt::print("LoadBalancer Ingress:     {}\n", s.load_balancer_ip->str());
  if (!s.external_name.empty()) fmt::print("External Name:            {}\n", s.external_name);
  for (const auto& p : s.ports) {
    auto target = p.target_port_name.empty() ? std::to_string(p.target_port) : p.target_port_name;
    fmt::print("Port:                     {}  {}/{}\nTargetPort:               {}/{}\n",
               or_unset(p.name), p.port, enum_name(p.protocol), target, enum_name(p.protocol));
    if (p.node_port)
      fmt::print("NodePort:                 {}  {}/{}\n", or_unset(p.name), *p.node_port,
                 enum_name(p.protocol));
    std::vector<std::string> eps;
    for (const auto& e : s.endpoints)
      if (e.port_name == p.name) eps.push_back(fmt::format("{}:{}", e.ip.str(), e.port));
    fmt::print("Endpoints:                {}\n",
               eps.empty() ? "<none>" : fmt::format("{}", fmt::join(eps, ",")));
  }
  fmt::print("Session Affinity:         {}\n", enum_name(s.session_affinity));
  fmt::print("External Traffic Policy:  {}\nInternal Traffic Policy:  {}\n",
             enum_name(s.external_traffic_policy), enum_name(s.internal_traffic_policy));
  if (!s.load_balancer_source_ranges.empty()) {
    std::vector<std::string> ranges;
    for (const auto& r : s.load_balancer_source_ranges) ranges.push_back(r.str());
    fmt::print("LoadBalancer Source Ranges: {}\n", fmt::join(ranges, ","));
  }
}

// "SERVICE:PORT (ENDPOINT,...)" as kubectl describe ingress shows a backend.
std::string backend_text(const LabRecord& state, const std::string& ns, const IngressBackend& b) {
  std::vector<std::string> eps;
  for (const auto* e : ingress_backend_endpoints(state, ns, b))
    eps.push_back(fmt::format("{}:{}", e->ip.str(), e->port));
  return fmt::format("{} ({})", b.str(),
                     eps.empty() ? "<none>" : fmt::format("{}", fmt::join(eps, ",")));
}

void describe_ingress(const LabRecord& state, const Ingress& in) {
  auto address = in.served() ? ingress_controller_address(state) : "";
  fmt::print("Name:             {}\nNamespace:        {}\nAddress:          {}\n", in.name,
             in.namespace_, address.empty() ? "<none>" : address);
  fmt::print("Ingress Class:    {}{}\n", in.class_name,
             in.served() ? "" : " (no controller in the lab serves this class)");
  fmt::print("Default backend:  {}\n", in.default_backend
                                           ? backend_text(state, in.namespace_, *in.default_backend)
                                           : std::string("<default>"));
  if (!in.tls.empty()) {
    fmt::print("TLS:\n");
    for (const auto& hosts : in.tls)
      fmt::print("  SNI routes {} (certificate from the lab's CA, {}/ca.crt)\n",
                 fmt::join(hosts, ","), lab_dir(state.name));
  }
  std::vector<std::vector<std::string>> rows = {{"  Host", "Path", "Backends"},
                                                {"  ----", "----", "--------"}};
  for (const auto& rule : in.rules) {
    rows.push_back({"  " + (rule.host.empty() ? std::string("*") : rule.host), "", ""});
    for (const auto& p : rule.paths)
      rows.push_back({"", fmt::format("{} ({})", p.path, enum_name(p.type)),
                      backend_text(state, in.namespace_, p.backend)});
  }
  fmt::print("Rules:\n");
  print_table(rows);
  std::vector<std::string> annotations;
  for (const auto& [k, v] : in.annotations) annotations.push_back(fmt::format("{}: {}", k, v));
  fmt::print("Annotations:      {}\n",
             annotations.empty()
                 ? "<none>"
                 : fmt::format("{}", fmt::join(annotations, "\n                  ")));
}

void describe_gateway(const LabRecord& state, const Gateway& g) {
  auto address = gateway_address(state, g);
  fmt::print("Name:             {}\nNamespace:        {}\nClass:            {}{}\n", g.name,
             g.namespace_, g.class_name,
             g.served() ? "" : " (no controller in the lab serves this class)");
  fmt::print("Address:          {}\n", address.empty() ? "<none>" : address);
  if (g.served())
    fmt::print("Data plane:       deployment and service {}/{} (nginx)\n", g.namespace_,
               gateway_deployment_name(g));
  fmt::print("Allowed routes:   from {} namespace{}\n",
             g.allowed_routes == RouteNamespaces::all ? "every" : "its own",
             g.allowed_routes == RouteNamespaces::all ? "" : " only");
  const auto attachments = gateway_attachments(g, state.http_routes);
  std::vector<std::vector<std::string>> rows = {
      {"  Listener", "Port", "Protocol", "Hostname", "Attached routes"},
      {"  --------", "----", "--------", "--------", "---------------"}};
  for (const auto& l : g.listeners) {
    std::vector<std::string> routes;
    for (const auto& a : attachments)
      if (a.listener == &l) routes.push_back(a.route->key());
    rows.push_back({"  " + l.name, std::to_string(l.port), std::string(enum_name(l.protocol)),
                    l.hostname.empty() ? "*" : l.hostname,
                    routes.empty() ? "<none>" : fmt::format("{}", fmt::join(routes, ","))});
  }
  fmt::print("Listeners:\n");
  print_table(rows);
}

void describe_http_route(const LabRecord& state, const HttpRoute& r) {
  fmt::print("Name:             {}\nNamespace:        {}\nHostnames:        {}\n", r.name,
             r.namespace_,
             r.hostnames.empty() ? "*" : fmt::format("{}", fmt::join(r.hostnames, ",")));
  fmt::print("Parents:\n");
  for (const auto& s : route_status(state.gateways, r, backend_exists(state)))
    fmt::print("  {}/{}{}: Accepted {} ({}), ResolvedRefs {} ({})\n", s.parent.namespace_,
               s.parent.name, s.parent.section.empty() ? "" : "/" + s.parent.section,
               s.accepted ? "True" : "False", enum_name(s.accepted_reason),
               s.resolved ? "True" : "False", enum_name(s.resolved_reason));
  for (size_t i = 0; i < r.rules.size(); ++i) {
    const auto& rule = r.rules[i];
    fmt::print("Rule {}:\n", i + 1);
    for (const auto& m : rule.matches) {
      auto text = fmt::format("{}{} {}", m.method.empty() ? "" : m.method + " ",
                              enum_name(m.path_type), m.path);
      for (const auto& h : m.headers)
        text += fmt::format(", header {} {} {}", h.name,
                            h.type == ValueMatchType::exact ? "=" : "~", h.value);
      for (const auto& q : m.query_params)
        text += fmt::format(", query {} {} {}", q.name, q.type == ValueMatchType::exact ? "=" : "~",
                            q.value);
      fmt::print("  Match:    {}\n", text);
    }
    for (const auto& f : rule.filters) fmt::print("  Filter:   {}\n", enum_name(f.type));
    for (const auto& b : rule.backends) {
      std::vector<std::string> eps;
      for (const auto* e : backend_ref_endpoints(state, r.namespace_, b))
        eps.push_back(fmt::format("{}:{}", e->ip.str(), e->port));
      fmt::print("  Backend:  {}:{} weight {} ({})\n", b.name, b.port, b.weight,
                 !backend_exists(state)(r.namespace_, b) ? std::string("not found: 500")
                 : eps.empty()                           ? std::string("no endpoints: 503")
                                                         : fmt::format("{}", fmt::join(eps, ",")));
    }
  }
}

}  // namespace

int describe(const std::string& target, const ListOptions& options) {
  static const std::map<std::string, DescribeKind> kinds = {
      {"pod", DescribeKind::pod},
      {"pods", DescribeKind::pod},
      {"po", DescribeKind::pod},
      {"service", DescribeKind::service},
      {"services", DescribeKind::service},
      {"svc", DescribeKind::service},
      {"networkpolicy", DescribeKind::network_policy},
      {"networkpolicies", DescribeKind::network_policy},
      {"netpol", DescribeKind::network_policy},
      {"ingress", DescribeKind::ingress},
      {"ingresses", DescribeKind::ingress},
      {"ing", DescribeKind::ingress},
      {"gateway", DescribeKind::gateway},
      {"gateways", DescribeKind::gateway},
      {"gtw", DescribeKind::gateway},
      {"httproute", DescribeKind::http_route},
      {"httproutes", DescribeKind::http_route}};
  auto slash = target.find('/');
  auto kind = kinds.find(target.substr(0, slash));
  if (slash == std::string::npos || kind == kinds.end() || slash + 1 == target.size())
    throw UserError(
        fmt::format("describe takes KIND/NAME or KIND/NAMESPACE/NAME, KIND one of pod, service, "
                    "networkpolicy, ingress, gateway, httproute; not \"{}\"",
                    target));
  auto rest = target.substr(slash + 1);
  auto ns = options.namespace_;
  if (auto second = rest.find('/'); second != std::string::npos) {
    ns = rest.substr(0, second);
    rest = rest.substr(second + 1);
  }
  auto state = read_state(pick_lab(options.lab));
  switch (kind->second) {
    case DescribeKind::pod:
      describe_pod(find_one(state.pods, ns, rest, "pod"));
      break;
    case DescribeKind::service:
      describe_service(find_one(state.services, ns, rest, "service"));
      break;
    case DescribeKind::network_policy:
      describe_network_policy(state, find_one(state.network_policies, ns, rest, "network policy"));
      break;
    case DescribeKind::ingress:
      describe_ingress(state, find_one(state.ingresses, ns, rest, "ingress"));
      break;
    case DescribeKind::gateway:
      describe_gateway(state, find_one(state.gateways, ns, rest, "gateway"));
      break;
    case DescribeKind::http_route:
      describe_http_route(state, find_one(state.http_routes, ns, rest, "httproute"));
      break;
  }
  return 0;
}

}  // namespace knl::cli
