// check: real packets from pods and nodes to a pod on every node, and to
// every service from pods, nodes and outside hosts, each answer compared with
// what Kubernetes would give, network policies included.

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/plan/gateway.h"
#include "knetlab/util/error.h"
#include "policies.h"
#include "probes.h"

namespace knl::cli {

using nlohmann::json;

namespace {

struct Probe {
  std::string from, netns, to;
  std::string protocol;  // TCP (HTTP GET /hostname), UDP ("hostname") or DNS (an A query)
  std::string address;   // IP:PORT; for DNS, the name asked
  std::set<std::string> expected_pods;  // empty: no answer expected; DNS: the answer's lines
  std::string expected_failure;         // "refused" or "timeout" when no pod is expected
  std::string server;                   // DNS: the server asked
  bool may_time_out = false;            // a policy drops it toward some of the expected pods
  std::vector<std::string> argv;        // HTTP and HTTPS: the curl command
  std::string or_else;                  // another right answer ("HTTP 403": a source range)
};

// The lines of dig's short answer, sorted and joined by ','; "none" for none.
std::string dns_answer(const std::set<std::string>& lines) {
  return lines.empty() ? "none" : fmt::format("{}", fmt::join(lines, ","));
}

ProgramCall probe_call(const Install& install, const Probe& p) {
  if (!p.argv.empty()) return {p.netns, p.argv, ""};
  if (p.protocol == "DNS")
    return {p.netns, {"dig", "+short", "+time=2", "+tries=2", "@" + p.server, p.address, "A"}, ""};
  return hostname_call(install, p.netns, p.protocol == "UDP" ? Protocol::udp : Protocol::tcp,
                       p.address);
}

// What answered: "pod NAME", "refused", "timeout" or the error; for DNS the
// answer (dns_answer) or "timeout".
std::string probe_answer(const Probe& p, const ProgramResult& r) {
  if (p.protocol != "DNS") return hostname_answer(r);
  if (r.status == 9) return "timeout";  // dig: no server answered
  if (r.status != 0)
    return r.status == 127 ? "dig is missing" : fmt::format("dig exit {}", r.status);
  std::set<std::string> lines;
  std::istringstream in(r.output);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.insert(line);
  return dns_answer(lines);
}

bool answered_as_expected(const Probe& p, const std::string& got) {
  if (p.may_time_out && got == "timeout") return true;
  if (!p.or_else.empty() && got == p.or_else) return true;
  if (p.protocol == "DNS")
    return got == (p.expected_failure.empty() ? dns_answer(p.expected_pods) : p.expected_failure);
  if (p.expected_pods.empty()) return got == p.expected_failure;
  return got.rfind("pod ", 0) == 0 && p.expected_pods.count(got.substr(4));
}

std::string expected_text(const Probe& p) {
  std::vector<std::string> pods(p.expected_pods.begin(), p.expected_pods.end());
  std::string text = p.protocol == "DNS" ? dns_answer(p.expected_pods)
                     : pods.empty()      ? p.expected_failure
                     : pods.size() == 1  ? pods.front()
                                         : fmt::format("one of {}", fmt::join(pods, ","));
  if (p.protocol == "DNS" && !p.expected_failure.empty()) text = p.expected_failure;
  if (!p.or_else.empty()) text += " or " + p.or_else;
  return p.may_time_out ? text + " or timeout (policy)" : text;
}

// True when every endpoint of `service` is a pod that answers GET /hostname
// on the endpoint's port, as netexec does: those are the services check can
// ask for a pod's name (kube-dns and kubernetes are not).
bool answers_hostname(const LabRecord& state, const ServiceRecord& service) {
  for (const auto& e : service.endpoints) {
    auto pod = std::find_if(state.pods.begin(), state.pods.end(),
                            [&](const PodRecord& p) { return p.key() == e.pod; });
    if (pod == state.pods.end() || served_ports(*pod).empty()) return false;
  }
  return true;
}

// As `knetlab exec` names the pod: pod/NAME in default, pod/NS/NAME elsewhere.
std::string pod_target(const PodRecord& pod) {
  return pod.namespace_ == "default" ? "pod/" + pod.name : "pod/" + pod.key();
}

// The address a node's own packets to a pod on another node, and the
// packets it masquerades toward one, leave with: flannel.1's (its pod CIDR's
// network address) with VXLAN, its own otherwise.
Ipv4 node_source(const LabRecord& state, const NodeRecord& node) {
  return state.network.cni == Cni::vxlan ? node.pod_cidr.network : node.ip;
}

// Narrows `p`'s expected pods to those `allowed` lets the connection reach:
// none left means a timeout, some left that it may time out.
void apply_policies(Probe& p, const std::function<bool(const std::string& pod)>& allowed) {
  std::set<std::string> kept;
  for (const auto& pod : p.expected_pods)
    if (allowed(pod)) kept.insert(pod);
  if (kept.size() == p.expected_pods.size()) return;
  if (kept.empty() && p.protocol != "DNS") {
    p.expected_pods.clear();
    p.expected_failure = "timeout";
  } else if (p.protocol != "DNS") {
    p.expected_pods = std::move(kept);
    p.may_time_out = true;
  } else {
    // A DNS answer names no pod: any server dropped makes a timeout possible.
    if (kept.empty()) p.expected_pods.clear(), p.expected_failure = "timeout";
    p.may_time_out = !kept.empty();
  }
}

// The start of an HTTP probe's curl: it prints the status and the pod nginx
// proxied to, which nginx names when asked with the probe header.
std::vector<std::string> probe_curl() {
  return {"curl", "-s",
          "-o",   "/dev/null",
          "-m",   "2",
          "-w",   fmt::format("%{{http_code}} %header{{{}}}", kIngressUpstreamHeader),
          "-H",   std::string(kIngressProbeHeader) + ": 1"};
}

// The pods a request served by `backend` of an ingress in `ns` may reach.
std::set<std::string> backend_pods(const LabRecord& state, const std::string& ns,
                                   const IngressBackend& backend) {
  std::set<std::string> out;
  for (const auto* e : ingress_backend_endpoints(state, ns, backend))
    out.insert(e->pod.substr(e->pod.find('/') + 1));
  return out;
}

// An outside host's requests to the ingress controller: every path of every
// rule of a served ingress (but regular expressions), over HTTPS too for TLS
// hosts, and a host no rule names, each expected to reach the pods Kubernetes'
// ingress semantics pick (route_ingress_request) or the controller's own 404,
// 503 or 308.
std::vector<Probe> ingress_probes(const LabRecord& state) {
  std::vector<Probe> probes;
  const ServiceRecord* controller = nullptr;
  for (const auto& s : state.services)
    if (s.namespace_ == kIngressNamespace && s.name == kIngressController) controller = &s;
  if (!controller || state.hosts.empty() || state.nodes.empty()) return probes;
  const auto& client = state.hosts.front();
  const auto address = controller->load_balancer_ip ? controller->load_balancer_ip->str()
                                                    : state.nodes.front().ip.str();
  const int http_port = controller->load_balancer_ip ? 80 : kIngressHttpNodePort;
  const int https_port = controller->load_balancer_ip ? 443 : kIngressHttpsNodePort;
  const auto ca = lab_dir(state.name) + "/ca.crt";
  auto probe = [&](const std::string& host, const std::string& path, bool https) {
    auto name = host.empty() ? address : host;
    auto url = fmt::format("{}://{}:{}{}", https ? "https" : "http", name,
                           https ? https_port : http_port, path);
    std::vector<std::string> argv = probe_curl();
    if (https) argv.insert(argv.end(), {"--cacert", ca});
    argv.insert(
        argv.end(),
        {"--resolve", fmt::format("{}:{}:{}", name, https ? https_port : http_port, address), url});
    Probe p{"host/" + client.name,
            client.netns,
            "ingress " + url,
            https ? "HTTPS" : "HTTP",
            url,
            {},
            ""};
    p.argv = std::move(argv);
    auto route = route_ingress_request(state.ingresses, host, path);
    if (!route.ingress) {
      p.expected_failure = "HTTP 404";
    } else {
      const auto& o = route.ingress->options;
      bool tls = !host.empty() && ingress_tls_host(state.ingresses, host);
      if (!https && ((tls && o.ssl_redirect) || o.force_ssl_redirect)) {
        p.expected_failure = "HTTP 308";
      } else {
        p.expected_pods = backend_pods(state, route.ingress->namespace_, route.path.backend);
        if (route.canary && route.canary->options.canary_weight > 0)
          for (auto& pod : backend_pods(state, route.canary->namespace_, route.canary_backend))
            p.expected_pods.insert(pod);
        if (p.expected_pods.empty()) p.expected_failure = "HTTP 503";
        // The controller sees the host's address, or a node's when one masqueraded it.
        if (!o.whitelist.empty()) p.or_else = "HTTP 403";
      }
    }
    probes.push_back(std::move(p));
  };
  std::set<std::pair<std::string, std::string>> asked;
  for (const auto& in : state.ingresses) {
    if (!in.served()) continue;
    for (const auto& rule : in.rules) {
      // A wildcard host is asked for with a first label of its own.
      auto host = rule.host.rfind("*.", 0) == 0 ? "probe" + rule.host.substr(1) : rule.host;
      for (const auto& path : rule.paths) {
        if (path.type == PathType::implementation_specific && in.options.use_regex) continue;
        if (!asked.insert({host, path.path}).second) continue;
        probe(host, path.path, false);
        // A prefix matches by path element: one letter more is another path.
        auto beside = path.path.size() > 1 && path.path.back() == '/'
                          ? path.path.substr(0, path.path.size() - 1) + "x"
                          : path.path + "x";
        if (path.type != PathType::exact && path.path != "/" && asked.insert({host, beside}).second)
          probe(host, beside, false);
        if (!host.empty() && ingress_tls_host(state.ingresses, rule.host))
          probe(host, path.path, true);
      }
    }
  }
  probe("no-rule-names-this.example", "/", false);
  return probes;
}

// What a request that `entry` (of a gateway's server) answers should get:
// its backends' pods by weight, or the gateway's own redirect, 500 (no
// backend, or a missing one) or 503 (no endpoints).
void expect_route(const LabRecord& state, const RouteEntry& entry, Probe& p) {
  const auto& rule = entry.the_rule();
  for (const auto& f : rule.filters)
    if (f.type == RouteFilterType::request_redirect) {
      p.expected_failure = fmt::format("HTTP {}", f.status_code);
      return;
    }
  std::set<std::string> answers;  // "HTTP 500", "HTTP 503" besides the pods
  for (const auto& b : rule.backends) {
    if (b.weight == 0) continue;
    if (!backend_exists(state)(entry.route->namespace_, b)) {
      answers.insert("HTTP 500");
      continue;
    }
    auto endpoints = backend_ref_endpoints(state, entry.route->namespace_, b);
    if (endpoints.empty()) answers.insert("HTTP 503");
    for (const auto* e : endpoints) p.expected_pods.insert(e->pod.substr(e->pod.find('/') + 1));
  }
  if (p.expected_pods.empty() && answers.empty()) answers.insert("HTTP 500");
  if (p.expected_pods.empty()) {
    p.expected_failure = *answers.begin();
    if (answers.size() > 1) p.or_else = *answers.rbegin();
  } else if (!answers.empty()) {
    p.or_else = *answers.begin();
  }
}

// An outside host's requests to each served gateway: every non-regex match
// of every attached route (with its method, exact headers and query
// parameters), the path one letter longer beside each prefix, and a host no
// route names, on each listener port, each expected to reach what the
// Gateway API's precedence picks (route_gateway_request).
std::vector<Probe> gateway_probes(const LabRecord& state) {
  std::vector<Probe> probes;
  if (state.hosts.empty() || state.nodes.empty()) return probes;
  const auto& client = state.hosts.front();
  const auto ca = lab_dir(state.name) + "/ca.crt";
  for (const auto& g : state.gateways) {
    if (!g.served()) continue;
    const ServiceRecord* service = nullptr;
    for (const auto& s : state.services)
      if (s.namespace_ == g.namespace_ && s.name == gateway_deployment_name(g)) service = &s;
    if (!service) continue;
    const auto servers = gateway_servers(g, state.http_routes);
    // Through the load balancer, or the first node's nodePort without one.
    auto reach = [&](int port) -> std::pair<std::string, int> {
      if (service->load_balancer_ip) return {service->load_balancer_ip->str(), port};
      for (const auto& p : service->ports)
        if (p.port == port && p.node_port) return {state.nodes.front().ip.str(), *p.node_port};
      return {"", 0};
    };
    std::set<std::string> asked;
    auto probe = [&](const GatewayServer& s, const std::string& host, const RouteMatch& m,
                     const std::string& path) {
      auto [address, port] = reach(s.port);
      if (address.empty()) return;
      GatewayRequest request{s.port, host, m.method.empty() ? "GET" : m.method, path, "", {}};
      std::vector<std::string> query;
      for (const auto& q : m.query_params)
        if (q.type == ValueMatchType::exact) query.push_back(q.name + "=" + q.value);
      request.query = fmt::format("{}", fmt::join(query, "&"));
      const bool https = s.protocol == ListenerProtocol::https;
      auto url = fmt::format("{}://{}:{}{}{}{}", https ? "https" : "http", host, port, path,
                             query.empty() ? "" : "?", request.query);
      auto key = request.method + " " + url;
      std::vector<std::string> headers;  // "NAME: VALUE", as curl sends them
      for (const auto& h : m.headers) {
        if (h.type != ValueMatchType::exact) continue;
        auto name = h.name;
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        request.headers[name] = h.value;
        headers.push_back(h.name + ": " + h.value);
        key += " " + headers.back();
      }
      if (!asked.insert(key).second) return;
      std::vector<std::string> argv = probe_curl();
      if (request.method == "HEAD")
        argv.push_back("--head");
      else if (request.method != "GET")
        argv.insert(argv.end(), {"-X", request.method});
      for (const auto& h : headers) argv.insert(argv.end(), {"-H", h});
      if (https) argv.insert(argv.end(), {"--cacert", ca});
      argv.insert(argv.end(), {"--resolve", fmt::format("{}:{}:{}", host, port, address), url});
      Probe p{"host/" + client.name,
              client.netns,
              "gateway " + g.key() + " " + key,
              https ? "HTTPS" : "HTTP",
              url,
              {},
              ""};
      p.argv = std::move(argv);
      auto route = route_gateway_request(servers, request);
      if (!route.entry)
        p.expected_failure = "HTTP 404";
      else
        expect_route(state, *route.entry, p);
      probes.push_back(std::move(p));
    };
    for (const auto& s : servers) {
      // A host for the server: a wildcard's with a first label of its own;
      // any host's by the certificate's name (HTTPS) or a name of its own.
      auto host = s.hostname.rfind("*.", 0) == 0          ? "probe" + s.hostname.substr(1)
                  : !s.hostname.empty()                   ? s.hostname
                  : s.protocol == ListenerProtocol::https ? gateway_certificate_host(g, "")
                                                          : "any-host.example";
      for (const auto& e : s.entries) {
        const auto& m = e.the_match();
        if (m.path_type == RoutePathType::regular_expression || m.method == "CONNECT") continue;
        probe(s, host, m, m.path);
        if (m.path_type == RoutePathType::path_prefix && m.path != "/") {
          auto beside =
              m.path.back() == '/' ? m.path.substr(0, m.path.size() - 1) + "x" : m.path + "x";
          probe(s, host, m, beside);
        }
      }
      if (s.entries.empty()) probe(s, host, RouteMatch{}, "/");
    }
  }
  return probes;
}

// What answered an ingress probe: "pod NAME" when nginx proxied it to a pod,
// "HTTP CODE" when the controller answered itself, or curl's failure.
std::string http_answer(const LabRecord& state, const ProgramResult& r) {
  switch (r.status) {
    case 0:
      break;
    case 7:
      return "refused";
    case 28:
      return "timeout";
    case 60:
      return "certificate not trusted";
    default:
      return fmt::format("curl exit {}", r.status);
  }
  auto space = r.output.find(' ');
  auto code = r.output.substr(0, space);
  // After retries nginx lists every address it tried; the last one answered.
  auto upstream = space == std::string::npos ? "" : r.output.substr(space + 1);
  if (auto comma = upstream.rfind(", "); comma != std::string::npos)
    upstream = upstream.substr(comma + 2);
  auto ip = upstream.substr(0, upstream.find(':'));
  for (const auto& pod : state.pods)
    if (!ip.empty() && pod.ip.str() == ip) return "pod " + pod.name;
  return "HTTP " + code;
}

}  // namespace

int check(const CheckOptions& options) {
  if (options.policies) return check_policies(options);
  auto install = locate_install();
  auto state = read_state(pick_lab(options.lab));
  const auto world = record_world(state);
  std::map<std::string, const PolicyPod*> pod_of;
  for (const auto& p : world.pods) pod_of[p.key()] = &p;
  std::map<std::string, const NodeRecord*> node_of;
  for (const auto& n : state.nodes) node_of[n.name] = &n;
  auto allowed = [&](const PolicyEnd& from, const std::string& pod_key, Protocol protocol, int port,
                     bool through_service = false) {
    auto it = pod_of.find(pod_key);
    return it == pod_of.end() ||
           policy_verdict(world, from, policy_end(*it->second), protocol, port, through_service)
               .allowed;
  };
  // Clients: one pod per node (not hostNetwork), every node, every host.
  struct Client {
    std::string name, netns, node;
    PolicyEnd end;
  };
  std::vector<Client> clients;
  std::set<std::string> nodes_with_client;
  for (const auto& p : state.pods)
    if (!p.host_network && nodes_with_client.insert(p.node).second)
      clients.push_back({pod_target(p), p.netns, p.node, policy_end(*pod_of.at(p.key()))});
  for (const auto& n : state.nodes)
    clients.push_back(
        {"node/" + n.name, n.netns, n.name, {nullptr, node_source(state, n), n.name}});

  std::vector<Probe> probes;
  // Pod to pod and node to pod: one answering pod per node, reached from a
  // pod on every node and from every node, with no NAT in between.
  std::set<std::string> nodes_with_target;
  for (const auto& p : state.pods) {
    auto ports = served_ports(p);
    if (ports.empty() || p.host_network || !nodes_with_target.insert(p.node).second) continue;
    int port = ports.front().second;
    auto address = fmt::format("{}:{}", p.ip.str(), port);
    for (const auto& c : clients) {
      if (c.name == pod_target(p)) continue;
      Probe probe{c.name, c.netns, pod_target(p) + " " + address, "TCP", address, {p.name}, ""};
      apply_policies(
          probe, [&](const std::string&) { return allowed(c.end, p.key(), Protocol::tcp, port); });
      probes.push_back(std::move(probe));
    }
  }
  // Each service's name, from a pod on every node, through the cluster DNS.
  const auto& zone = state.network.dns_domain;
  const auto dns_server = state.network.service_subnet.at(10);
  std::vector<const EndpointRecord*> dns_endpoints;
  for (const auto& s : state.services)
    if (s.cluster_ip && *s.cluster_ip == dns_server)
      for (const auto& e : s.endpoints)
        if (e.protocol == Protocol::udp) dns_endpoints.push_back(&e);
  std::map<std::string, Ipv4> host_of_name;
  for (const auto& h : state.hosts)
    for (const auto& n : h.dns_names) host_of_name.emplace(n, h.ip);
  for (const auto& s : state.services) {
    std::set<std::string> answer;
    if (s.cluster_ip) answer.insert(s.cluster_ip->str());
    if (s.headless)
      for (const auto& e : s.endpoints) answer.insert(e.ip.str());
    if (!s.external_name.empty()) {
      answer.insert(s.external_name + ".");
      if (auto it = host_of_name.find(s.external_name); it != host_of_name.end())
        answer.insert(it->second.str());
    }
    auto name = fmt::format("{}.{}.svc.{}", s.name, s.namespace_, zone);
    for (const auto& c : clients) {
      if (c.name.rfind("pod/", 0) != 0) continue;
      Probe probe{c.name, c.netns, s.key() + " DNS", "DNS", name, answer, "", dns_server.str()};
      size_t reachable = 0;
      for (const auto* e : dns_endpoints)
        reachable += allowed(c.end, e->pod, Protocol::udp, e->port, true) ? 1 : 0;
      if (reachable < dns_endpoints.size()) {
        probe.may_time_out = reachable > 0;
        if (reachable == 0) probe.expected_pods.clear(), probe.expected_failure = "timeout";
      }
      probes.push_back(std::move(probe));
    }
  }
  for (const auto& s : state.services) {
    if (!s.cluster_ip || !answers_hostname(state, s)) continue;
    bool int_local = s.internal_traffic_policy == TrafficPolicy::local;
    bool ext_local = s.external_traffic_policy == TrafficPolicy::local;
    for (const auto& port : s.ports) {
      if (port.protocol == Protocol::sctp) continue;
      std::string proto(enum_name(port.protocol));
      std::set<std::string> all;
      std::map<std::string, std::set<std::string>> by_node;
      std::map<std::string, const EndpointRecord*> endpoint_of;  // by pod name
      for (const auto& e : s.endpoints)
        if (e.port_name == port.name) {
          auto name = e.pod.substr(e.pod.find('/') + 1);
          all.insert(name);
          by_node[e.node].insert(name);
          endpoint_of[name] = &e;
        }
      auto failure = [&](const std::set<std::string>& pods) {
        return pods.empty() ? (all.empty() ? "refused" : "timeout") : "";
      };
      // From `source` (an address that is no pod's, or a client's end) to
      // the endpoint pod `name`.
      auto reaches = [&](const PolicyEnd& source, const std::string& name) {
        const auto* e = endpoint_of.at(name);
        return allowed(source, e->pod, port.protocol, e->port, true);
      };
      auto cluster_ip = fmt::format("{}:{}", s.cluster_ip->str(), port.port);
      for (const auto& c : clients) {
        auto expected = int_local ? by_node[c.node] : all;
        Probe probe{c.name,     c.netns,  s.key() + " " + cluster_ip, proto,
                    cluster_ip, expected, failure(expected)};
        apply_policies(probe, [&](const std::string& name) { return reaches(c.end, name); });
        // Without endpoints the packet keeps the ClusterIP: a policy that
        // denies the client egress there drops it before it can be refused.
        if (all.empty() &&
            !policy_verdict(world, c.end, {nullptr, *s.cluster_ip, ""}, port.protocol, port.port)
                 .allowed)
          probe.expected_failure = "timeout";
        probes.push_back(std::move(probe));
      }
      if (state.hosts.empty()) continue;
      const auto& host = state.hosts.front();
      auto host_name = "host/" + host.name;
      // The source a policy sees of the host's packet through `node`: the
      // host's own, unless the node masqueraded it toward another node.
      auto through = [&](const NodeRecord& node, const std::string& name) {
        const auto* e = endpoint_of.at(name);
        bool masqueraded = !ext_local && e->node != node.name;
        return reaches({nullptr, masqueraded ? node_source(state, node) : host.ip, ""}, name);
      };
      if (port.node_port)
        for (const auto& n : state.nodes) {
          auto expected = ext_local ? by_node[n.name] : all;
          auto address = fmt::format("{}:{}", n.ip.str(), *port.node_port);
          Probe probe{host_name, host.netns,       s.key() + " NodePort " + address, proto, address,
                      expected,  failure(expected)};
          apply_policies(probe, [&](const std::string& name) { return through(n, name); });
          probes.push_back(std::move(probe));
        }
      if (s.load_balancer_ip) {
        auto address = fmt::format("{}:{}", s.load_balancer_ip->str(), port.port);
        std::set<std::string> expected = all;
        const auto& ranges = s.load_balancer_source_ranges;
        bool admitted =
            ranges.empty() || std::any_of(ranges.begin(), ranges.end(),
                                          [&](const Ipv4Net& r) { return r.contains(host.ip); });
        if (!admitted) expected.clear();
        Probe probe{host_name,
                    host.netns,
                    s.key() + " LoadBalancer " + address,
                    proto,
                    address,
                    expected,
                    expected.empty() ? (all.empty() && admitted ? "refused" : "timeout") : ""};
        // The balancer picks a node (one with an endpoint, for Local).
        apply_policies(probe, [&](const std::string& name) {
          bool denied_somewhere = false;
          for (const auto& n : state.nodes)
            if (!ext_local || by_node[n.name].count(name)) denied_somewhere |= !through(n, name);
          return !denied_somewhere;
        });
        probes.push_back(std::move(probe));
      }
    }
  }
  for (auto& p : ingress_probes(state)) probes.push_back(std::move(p));
  for (auto& p : gateway_probes(state)) probes.push_back(std::move(p));
  std::vector<ProgramCall> calls;
  for (const auto& p : probes) calls.push_back(probe_call(install, p));
  auto answer = [&](size_t i, const ProgramResult& r) {
    return probes[i].argv.empty() ? probe_answer(probes[i], r) : http_answer(state, r);
  };
  auto [results, asked_again] = run_probes_again(calls, 16, [&](size_t i, const auto& r) {
    return answered_as_expected(probes[i], answer(i, r));
  });
  std::vector<std::vector<std::string>> rows{{"FROM", "TO", "PROTO", "EXPECTED", "GOT", ""}};
  json items = json::array();
  std::vector<JunitCase> cases;
  int differences = 0;
  for (size_t i = 0; i < probes.size(); ++i) {
    const auto& p = probes[i];
    auto got = answer(i, results[i]);
    bool ok = answered_as_expected(p, got);
    rows.push_back({p.from, p.to, p.protocol, expected_text(p), got, ok ? "ok" : "DIFFERS"});
    items.push_back({{"from", p.from},
                     {"to", p.to},
                     {"protocol", p.protocol},
                     {"expected", expected_text(p)},
                     {"got", got},
                     {"ok", ok}});
    differences += ok ? 0 : 1;
    cases.push_back({fmt::format("{} -> {} {}", p.from, p.to, p.protocol),
                     ok ? "" : fmt::format("expected {}, got {}", expected_text(p), got)});
  }
  if (!options.junit.empty()) write_junit(options.junit, "knetlab check " + state.name, cases);
  if (options.format == "json") {
    fmt::print("{}\n", json{{"lab", state.name},
                            {"probes", items},
                            {"askedAgain", asked_again},
                            {"differences", differences}}
                           .dump(2));
  } else {
    print_table(rows);
    fmt::print("\n{} probes ({} asked again), {} differ from what Kubernetes would give\n",
               probes.size(), asked_again, differences);
  }
  return differences ? 1 : 0;
}

}  // namespace knl::cli
