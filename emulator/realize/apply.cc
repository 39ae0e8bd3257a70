// apply: reconciles a running lab to a topology file that adds nodes, hosts,
// racks or pods, relabels pods, or changes network policies. The difference
// is the plan's (plan/apply_diff.h); this builds it, tells running FRR
// instances their new peers in place, and runs a pass so that the new nodes
// get every service's rules and every node the policies' rules.

#include <fmt/format.h>

#include "knetlab/plan/apply_diff.h"
#include "knetlab/plan/dns.h"
#include "knetlab/realize/certificates.h"
#include "knetlab/realize/controller.h"
#include "knetlab/realize/executor.h"
#include "knetlab/realize/requirements.h"
#include "knetlab/realize/routing.h"
#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {

ApplyResult Controller::apply(const std::string& file) {
  auto start = Clock::now();
  auto topology = parse_topology_file(file);
  check_buildable(topology);
  add_cluster_objects(topology);
  if (topology.name != lab_.plan.lab)
    throw UserError(
        fmt::format("{} describes lab \"{}\", not \"{}\"", file, topology.name, lab_.plan.lab));
  auto context = lab_.context;
  context.kept = running_allocations(lab_.plan);
  auto next = make_plan(topology, context);
  auto diff = diff_for_apply(lab_.plan, next);
  if (!diff.refused.empty())
    throw UserError(
        fmt::format("{}: apply adds nodes, hosts, racks and pods to a running lab, relabels its "
                    "pods, changes its ingresses and its network policies; this file also "
                    "changes {}. Run `knetlab destroy --lab {}` and deploy it to change those",
                    file, fmt::join(diff.refused, "; "), lab_.plan.lab));
  ApplyResult result{diff.nodes,    diff.hosts, diff.routers,  diff.pods, diff.relabelled,
                     diff.policies, 0,          diff.ingresses};
  if (diff.empty()) return result;
  if (!diff.nodes.empty() || !diff.routers.empty() || diff.policies || diff.ingresses)
    require_machine_support(next, file);

  make_certificates(effects_.programs, next);
  if (diff.adds()) {
    adopt(Executor(effects_.kernel, effects_.runtime, effects_.programs, effects_.journal, {})
              .add_pods(diff.fragment, lab_.mount_template));
    // With cni = "external" the new pods' addresses are their plugins'.
    for (const auto& added : diff.fragment.pods)
      for (auto& pod : next.pods)
        if (pod.key() == added.key()) pod.ip = added.ip;
  }
  // Running FRR instances learn their new networks and peers in place: no
  // session restarts.
  for (const auto& more : diff.frr) {
    const auto& f = *more.frr;
    for (const auto& [network, why] : more.networks) {
      run_vtysh(effects_.programs, f,
                {"configure terminal", fmt::format("router bgp {}", f.asn),
                 "address-family ipv4 unicast", "network " + network.str()});
      effects_.event(fmt::format("BGP: {} announces {} ({})", f.target, network.str(), why));
    }
    for (const auto& peer : more.peers) {
      auto lines = bgp_peer_lines(f, peer);
      std::vector<std::string> commands = {"configure terminal",
                                           fmt::format("router bgp {}", f.asn)};
      commands.insert(commands.end(), lines.router.begin(), lines.router.end());
      commands.push_back("address-family ipv4 unicast");
      commands.insert(commands.end(), lines.address_family.begin(), lines.address_family.end());
      run_vtysh(effects_.programs, f, commands);
      effects_.event(fmt::format("BGP: {} peers with {} ({}) from now on", f.target, peer.target,
                                 peer.ip.str()));
    }
  }
  lab_.plan = std::move(next);
  lab_.topology = std::move(topology);
  lab_.context = std::move(context);
  // A pass over everything: the new and relabelled pods join their
  // services' endpoints and their policies' sets, the new nodes' kube-proxy
  // loads every service, the new daemons are taken from the journal.
  pass(Changes{.all = true});
  if (!lab_.plan.frr.empty()) wait_for_bgp(Clock::now() + std::chrono::seconds(30));
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  effects_.event(fmt::format(
      "apply {}: added nodes [{}], hosts [{}], racks [{}], pods [{}]; relabelled pods [{}]; "
      "network policies {}; ingresses {} in {:.3f} s",
      file, fmt::join(result.nodes, ", "), fmt::join(result.hosts, ", "),
      fmt::join(result.routers, ", "), fmt::join(result.pods, ", "),
      fmt::join(result.relabelled, ", "), result.policies ? "changed" : "unchanged",
      result.ingresses ? "changed" : "unchanged", result.seconds));
  return result;
}

}  // namespace knl
