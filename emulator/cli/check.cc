// check: real packets from pods and nodes to a pod on every node, and to
// every service from pods, nodes and outside hosts, each answer compared with
// what Kubernetes would give.

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/kernel/programs.h"
#include "knetlab/util/error.h"

namespace knl::cli {

namespace {

struct Probe {
  std::string from, netns, to;
  std::string protocol;  // TCP (HTTP GET /hostname), UDP ("hostname") or DNS (an A query)
  std::string address;   // IP:PORT; for DNS, the name asked
  std::set<std::string> expected_pods;  // empty: no answer expected; DNS: the answer's lines
  std::string expected_failure;         // "refused" or "timeout" when no pod is expected
  std::string server;                   // DNS: the server asked
};

// The lines of dig's short answer, sorted and joined by ','; "none" for none.
std::string dns_answer(const std::set<std::string>& lines) {
  return lines.empty() ? "none" : fmt::format("{}", fmt::join(lines, ","));
}

// What answered: "pod NAME", "refused", "timeout" or the error; for DNS the
// answer (dns_answer).
std::string probe(const Install& install, const Probe& p) {
  if (p.protocol == "DNS") {
    auto r = run_program(p.netns,
                         {"dig", "+short", "+time=2", "+tries=2", "@" + p.server, p.address, "A"});
    if (r.status != 0)
      return r.status == 127 ? "dig is missing" : fmt::format("dig exit {}", r.status);
    std::set<std::string> lines;
    std::istringstream in(r.output);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.insert(line);
    return dns_answer(lines);
  }
  std::vector<std::string> argv{install.bin_dir + "/netexec"};
  if (p.protocol == "UDP")
    argv.insert(argv.end(), {"udp", p.address, "hostname", "--timeout=1"});
  else
    argv.insert(argv.end(), {"get", "http://" + p.address + "/hostname", "--timeout=1"});
  auto result = run_program(p.netns, argv);
  auto text = result.output;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (result.status == 0) return "pod " + text;
  if (text.find("refused") != std::string::npos || text.find("unreachable") != std::string::npos)
    return "refused";
  if (text.find("timed out") != std::string::npos) return "timeout";
  return text.empty() ? fmt::format("exit {}", result.status) : text;
}

// The port on which a pod answers GET /hostname: its netexec container's
// --http-port (8080 unless given); none for other pods.
std::optional<int> hostname_port(const PodRecord& pod) {
  for (const auto& c : pod.containers) {
    if (c.argv.empty()) continue;
    const auto& program = c.argv[0];
    if (program.substr(program.rfind('/') + 1) != "netexec") continue;
    int port = 8080;
    for (const auto& arg : c.argv)
      if (arg.rfind("--http-port=", 0) == 0) port = std::stoi(arg.substr(12));
    return port;
  }
  return std::nullopt;
}

// True when every endpoint of `service` is a pod that answers GET /hostname
// on the endpoint's port, as netexec does: those are the services check can
// ask for a pod's name (kube-dns and kubernetes are not).
bool answers_hostname(const LabRecord& state, const ServiceRecord& service) {
  for (const auto& e : service.endpoints) {
    auto pod = std::find_if(state.pods.begin(), state.pods.end(),
                            [&](const PodRecord& p) { return p.key() == e.pod; });
    if (pod == state.pods.end() || !hostname_port(*pod)) return false;
  }
  return true;
}

}  // namespace

int check(const std::string& lab_name) {
  auto install = locate_install();
  auto state = read_state(pick_lab(lab_name));
  // Clients: one pod per node (not hostNetwork), every node, every host.
  struct Client {
    std::string name, netns, node;
  };
  std::vector<Client> clients;
  std::set<std::string> nodes_with_client;
  for (const auto& p : state.pods)
    if (!p.host_network && nodes_with_client.insert(p.node).second)
      clients.push_back({"pod/" + p.name, p.netns, p.node});
  for (const auto& n : state.nodes) clients.push_back({"node/" + n.name, n.netns, n.name});

  std::vector<Probe> probes;
  // Pod to pod and node to pod: one answering pod per node, reached from a
  // pod on every node and from every node, with no NAT in between.
  std::set<std::string> nodes_with_target;
  for (const auto& p : state.pods) {
    auto port = hostname_port(p);
    if (!port || p.host_network || !nodes_with_target.insert(p.node).second) continue;
    auto address = fmt::format("{}:{}", p.ip.str(), *port);
    for (const auto& c : clients)
      if (c.name != "pod/" + p.name)
        probes.push_back(
            {c.name, c.netns, "pod/" + p.name + " " + address, "TCP", address, {p.name}, ""});
  }
  // Each service's name, from a pod on every node, through the cluster DNS.
  const auto& zone = state.network.dns_domain;
  const auto dns_server = state.network.service_subnet.at(10);
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
    for (const auto& c : clients)
      if (c.name.rfind("pod/", 0) == 0)
        probes.push_back(
            {c.name, c.netns, s.key() + " DNS", "DNS", name, answer, "", dns_server.str()});
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
      for (const auto& e : s.endpoints)
        if (e.port_name == port.name) {
          auto name = e.pod.substr(e.pod.find('/') + 1);
          all.insert(name);
          by_node[e.node].insert(name);
        }
      auto failure = [&](const std::set<std::string>& pods) {
        return pods.empty() ? (all.empty() ? "refused" : "timeout") : "";
      };
      auto cluster_ip = fmt::format("{}:{}", s.cluster_ip->str(), port.port);
      for (const auto& c : clients) {
        auto expected = int_local ? by_node[c.node] : all;
        probes.push_back({c.name, c.netns, s.key() + " " + cluster_ip, proto, cluster_ip, expected,
                          failure(expected)});
      }
      if (state.hosts.empty()) continue;
      const auto& host = state.hosts.front();
      auto host_name = "host/" + host.name;
      if (port.node_port)
        for (const auto& n : state.nodes) {
          auto expected = ext_local ? by_node[n.name] : all;
          auto address = fmt::format("{}:{}", n.ip.str(), *port.node_port);
          probes.push_back({host_name, host.netns, s.key() + " NodePort " + address, proto, address,
                            expected, failure(expected)});
        }
      if (s.load_balancer_ip) {
        auto address = fmt::format("{}:{}", s.load_balancer_ip->str(), port.port);
        std::set<std::string> expected = all;
        const auto& ranges = s.load_balancer_source_ranges;
        bool admitted =
            ranges.empty() || std::any_of(ranges.begin(), ranges.end(),
                                          [&](const Ipv4Net& r) { return r.contains(host.ip); });
        if (!admitted) expected.clear();
        probes.push_back(
            {host_name, host.netns, s.key() + " LoadBalancer " + address, proto, address, expected,
             expected.empty() ? (all.empty() && admitted ? "refused" : "timeout") : ""});
      }
    }
  }
  std::vector<std::vector<std::string>> rows{{"FROM", "TO", "PROTO", "EXPECTED", "GOT", ""}};
  int differences = 0;
  for (const auto& p : probes) {
    auto got = probe(install, p);
    std::vector<std::string> expected(p.expected_pods.begin(), p.expected_pods.end());
    bool ok = p.protocol == "DNS" ? got == dns_answer(p.expected_pods)
              : p.expected_pods.empty()
                  ? got == p.expected_failure
                  : got.rfind("pod ", 0) == 0 && p.expected_pods.count(got.substr(4));
    rows.push_back({p.from, p.to, p.protocol,
                    p.protocol == "DNS"    ? dns_answer(p.expected_pods)
                    : expected.empty()     ? p.expected_failure
                    : expected.size() == 1 ? expected.front()
                                           : fmt::format("one of {}", fmt::join(expected, ",")),
                    got, ok ? "ok" : "DIFFERS"});
    differences += ok ? 0 : 1;
  }
  print_table(rows);
  fmt::print("\n{} probes, {} differ from what Kubernetes would give\n", probes.size(),
             differences);
  return differences ? 1 : 0;
}

}  // namespace knl::cli
