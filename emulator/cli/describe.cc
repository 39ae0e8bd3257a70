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

enum class DescribeKind { pod, service, network_policy };

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
      {"netpol", DescribeKind::network_policy}};
  auto slash = target.find('/');
  auto kind = kinds.find(target.substr(0, slash));
  if (slash == std::string::npos || kind == kinds.end() || slash + 1 == target.size())
    throw UserError(
        fmt::format("describe takes KIND/NAME or KIND/NAMESPACE/NAME, KIND one of pod, service, "
                    "networkpolicy; not \"{}\"",
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
  }
  return 0;
}

}  // namespace knl::cli
