// check --policies: the reachability truth tables of the upstream
// network-policy e2e tests, from real packets: every pod probes every pod on
// every port the pods serve, and each cell is compared with policy_verdict().

#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "knetlab/plan/dns.h"
#include "knetlab/util/error.h"
#include "policies.h"
#include "probes.h"

namespace knl::cli {

using nlohmann::json;

namespace {

bool kernel_has_sctp() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 132 /* IPPROTO_SCTP */);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// Why the policies deny a connection, in a line.
std::string denial(const PolicyVerdict& v, const std::string& from, const std::string& to) {
  std::vector<std::string> parts;
  if (!v.egress_isolated_by.empty() && v.egress_allowed_by.empty())
    parts.push_back(fmt::format("no egress rule of {} allows it from {}",
                                fmt::join(v.egress_isolated_by, ", "), from));
  if (!v.ingress_isolated_by.empty() && v.ingress_allowed_by.empty())
    parts.push_back(fmt::format("no ingress rule of {} allows it to {}",
                                fmt::join(v.ingress_isolated_by, ", "), to));
  return fmt::format("{}", fmt::join(parts, "; "));
}

// Ports the policies name that no pod serves, or that cannot be probed.
std::vector<std::string> unprobed(const LabRecord& state,
                                  const std::set<std::pair<Protocol, int>>& served) {
  std::set<std::string> out;
  const bool sctp = kernel_has_sctp();
  for (const auto& p : state.network_policies)
    for (auto type : {PolicyType::ingress, PolicyType::egress})
      for (const auto& rule : p.rules(type))
        for (const auto& port : rule.ports) {
          auto name = fmt::format("{}/{}", enum_name(port.protocol),
                                  !port.port_name.empty() ? port.port_name
                                  : port.port == 0        ? std::string("*")
                                  : port.end_port ? fmt::format("{}-{}", port.port, port.end_port)
                                                  : std::to_string(port.port));
          if (port.protocol == Protocol::sctp) {
            out.insert(fmt::format("{} ({}): netexec serves TCP and UDP only{}", name, p.key(),
                                   sctp ? "" : ", and this kernel has no SCTP"));
            continue;
          }
          if (!port.port_name.empty() || port.port == 0) continue;
          int last = port.end_port ? port.end_port : port.port;
          bool any = std::any_of(served.begin(), served.end(), [&](const auto& s) {
            return s.first == port.protocol && s.second >= port.port && s.second <= last;
          });
          if (any) continue;
          if (port.port <= 53 && last >= 53)
            out.insert(
                fmt::format("{} ({}): only the cluster DNS serves it; `knetlab check` "
                            "resolves every service's name from a pod on every node",
                            name, p.key()));
          else
            out.insert(fmt::format("{} ({}): no pod serves it", name, p.key()));
        }
  return {out.begin(), out.end()};
}

}  // namespace

int check_policies(const CheckOptions& options) {
  auto install = locate_install();
  auto state = read_state(pick_lab(options.lab));
  const auto world = record_world(state);
  // The tables' pods: every pod with a network of its own, but the cluster's.
  std::vector<const PodRecord*> pods;
  for (const auto& p : state.pods)
    if (!p.host_network && !is_cluster_namespace(p.namespace_)) pods.push_back(&p);
  std::sort(pods.begin(), pods.end(),
            [](const auto* a, const auto* b) { return a->key() < b->key(); });
  if (pods.empty()) throw UserError(fmt::format("lab \"{}\" has no pods to probe", state.name));
  std::map<std::string, const PolicyPod*> pod_of;
  for (const auto& p : world.pods) pod_of[p.key()] = &p;
  std::vector<std::set<std::pair<Protocol, int>>> serves(pods.size());
  std::set<std::pair<Protocol, int>> tables;
  for (size_t i = 0; i < pods.size(); ++i)
    for (const auto& port : served_ports(*pods[i])) {
      serves[i].insert(port);
      tables.insert(port);
    }
  struct Cell {
    size_t table, from, to;
    PolicyVerdict expected;
  };
  std::vector<Cell> cells;
  std::vector<ProgramCall> calls;
  size_t t = 0;
  for (const auto& [protocol, port] : tables) {
    for (size_t f = 0; f < pods.size(); ++f)
      for (size_t d = 0; d < pods.size(); ++d) {
        if (!serves[d].count({protocol, port})) continue;
        cells.push_back({t, f, d,
                         policy_verdict(world, policy_end(*pod_of.at(pods[f]->key())),
                                        policy_end(*pod_of.at(pods[d]->key())), protocol, port)});
        calls.push_back(hostname_call(install, pods[f]->netns, protocol,
                                      fmt::format("{}:{}", pods[d]->ip.str(), port)));
      }
    ++t;
  }
  auto answered = [&](size_t i, const ProgramResult& r) {
    return hostname_answer(r) == "pod " + pods[cells[i].to]->name;
  };
  auto [results, asked_again] = run_probes_again(calls, 64, [&](size_t i, const auto& r) {
    return answered(i, r) == cells[i].expected.allowed;
  });

  // marks[table][from][to]: '.', 'X', '!' or '-' (not served).
  std::vector<std::vector<std::string>> marks(
      tables.size(), std::vector<std::string>(pods.size(), std::string(pods.size(), '-')));
  json differences = json::array(), tables_json = json::array();
  std::vector<std::string> why;
  std::vector<JunitCase> cases;
  for (size_t i = 0; i < cells.size(); ++i) {
    const auto& c = cells[i];
    bool observed = answered(i, results[i]);
    bool expected = c.expected.allowed;
    marks[c.table][c.from][c.to] = observed != expected ? '!' : observed ? '.' : 'X';
    auto [protocol, port] = *std::next(tables.begin(), static_cast<long>(c.table));
    auto from = pods[c.from]->key(), to = pods[c.to]->key();
    cases.push_back({fmt::format("{} -> {} {}/{} {}", from, to, enum_name(protocol), port,
                                 expected ? "allowed" : "denied"),
                     observed == expected
                         ? ""
                         : fmt::format("expected {}, observed {}", expected ? "allowed" : "denied",
                                       observed ? "allowed" : "denied")});
    if (observed == expected) continue;
    auto reason = expected ? std::string("the policies allow it") : denial(c.expected, from, to);
    why.push_back(fmt::format("{} -> {} {}/{}: expected {}, observed {} ({}; got {})", from, to,
                              enum_name(protocol), port, expected ? "allowed" : "denied",
                              observed ? "allowed" : "denied", reason,
                              hostname_answer(results[i])));
    differences.push_back({{"from", from},
                           {"to", to},
                           {"protocol", enum_name(protocol)},
                           {"port", port},
                           {"expected", expected},
                           {"observed", observed},
                           {"why", reason}});
  }
  std::vector<std::string> keys;
  for (const auto* p : pods) keys.push_back(p->key());
  auto notes = unprobed(state, tables);
  if (!options.junit.empty())
    write_junit(options.junit, "knetlab check --policies " + state.name, cases);
  if (options.format == "json") {
    t = 0;
    for (const auto& [protocol, port] : tables) {
      json rows = json::array();
      for (const auto& row : marks[t]) rows.push_back(row);
      tables_json.push_back({{"protocol", enum_name(protocol)}, {"port", port}, {"marks", rows}});
      ++t;
    }
    fmt::print("{}\n", json{{"lab", state.name},
                            {"pods", keys},
                            {"tables", tables_json},
                            {"probes", cells.size()},
                            {"askedAgain", asked_again},
                            {"differences", differences},
                            {"notProbed", notes}}
                           .dump(2));
    return differences.empty() ? 0 : 1;
  }
  t = 0;
  for (const auto& [protocol, port] : tables) {
    fmt::print(
        "{}/{}  (rows: from, columns: to; . allowed, X denied, ! observed differs from "
        "the policies, - not served)\n",
        enum_name(protocol), port);
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"-"});
    rows.back().insert(rows.back().end(), keys.begin(), keys.end());
    for (size_t f = 0; f < pods.size(); ++f) {
      rows.push_back({keys[f]});
      for (char m : marks[t][f]) rows.back().emplace_back(1, m);
    }
    print_table(rows);
    fmt::print("\n");
    ++t;
  }
  for (const auto& line : why) fmt::print("! {}\n", line);
  for (const auto& note : notes) fmt::print("not probed: {}\n", note);
  fmt::print("{} tables, {} probes ({} asked again), {} differ from what the policies allow\n",
             tables.size(), cells.size(), asked_again, differences.size());
  return differences.empty() ? 0 : 1;
}

}  // namespace knl::cli
