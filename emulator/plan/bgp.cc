// FRRouting in a lab: which namespaces run it, whom each peers with, what
// each originates and expects, and the configuration files it reads.

#include <fmt/format.h>

#include <algorithm>

#include "knetlab/plan/plan.h"
#include "planner.h"

namespace knl {

namespace {

FrrPlan frr_instance(const Plan& p, const std::string& target, const std::string& name,
                     const std::string& netns, uint32_t asn, Ipv4 router_id) {
  auto dir = fmt::format("{}/frr/{}", p.run_dir, target.substr(0, target.find('/')) + "-" + name);
  return FrrPlan{target, name, netns, dir, asn, router_id, {}, {}, {}, false, false};
}

void add_frr(const PlanContext& context, Plan& p, FrrPlan f) {
  p.files.push_back({f.config_path(), frr_config(p, f)});
  p.files.push_back(
      {f.dir + "/zebra.conf",
       fmt::format("! zebra of {} in lab \"{}\", written by knetlab. zebra puts the routes\n"
                   "! bgpd chooses into this namespace's kernel (as \"proto bgp\"); the BGP\n"
                   "! configuration is in frr.conf next to this file.\n"
                   "hostname {}\nlog file {}/zebra.log\nlog timestamp precision 3\n",
                   f.target, p.lab, f.name, f.dir)});
  for (const char* daemon : {"zebra", "bgpd"}) {
    auto conf = std::string(daemon) == "zebra" ? f.dir + "/zebra.conf" : f.config_path();
    p.daemons.push_back(
        {fmt::format("{} of {}", daemon, f.target),
         f.netns,
         f.dir,
         "frr",
         fmt::format("{}/{}.console.log", f.dir, daemon),
         {fmt::format("{}/{}", context.frr_dir, daemon), "-f", conf, "-i",
          fmt::format("{}/{}.pid", f.dir, daemon), "-z", f.dir + "/zserv.api", "--vty_socket",
          f.dir},
         // FRR keeps crash logs in /var/tmp/frr/DAEMON.PID: in the lab's folder instead.
         {{f.dir + "/tmp", "/var/tmp"}},
         // bgpd tries zebra's socket once, then only every 10 s.
         std::string(daemon) == "zebra" ? "" : f.dir + "/zserv.api"});
  }
  p.frr.push_back(std::move(f));
}

}  // namespace

// FRR: which namespaces run it, whom each peers with, what each originates
// and which routes each kernel must hold once BGP has converged.
void plan_bgp(const Topology& t, const PlanContext& context, Plan& p) {
  const auto cfg = t.network.bgp_or_default();
  const bool pods_bgp = t.network.cni == Cni::bgp;
  std::vector<const ServicePlan*> lbs;
  if (t.network.load_balancer_mode == LoadBalancerMode::bgp)
    for (const auto& s : p.services)
      if (s.load_balancer_ip) lbs.push_back(&s);
  const bool mesh = pods_bgp && cfg.peering == BgpPeering::mesh;
  const bool nodes_to_router = (pods_bgp && cfg.peering == BgpPeering::tor) || !lbs.empty();
  const bool nodes_frr = pods_bgp || !lbs.empty();
  for (auto& r : p.routers)
    if (r.name == "lan" && nodes_to_router) r.runs_frr = true;

  // What every router of the fabric learns: the racks' subnets, the pod
  // CIDRs when nodes announce them to routers, and Cluster-policy LB IPs.
  std::vector<std::pair<Ipv4Net, std::string>> fabric_routes;
  if (pods_bgp && nodes_to_router)
    for (const auto& n : p.nodes)
      fabric_routes.emplace_back(n.pod_cidr, "pod CIDR of node/" + n.name);
  for (const auto* s : lbs)
    if (!s->external_local)
      fabric_routes.emplace_back(Ipv4Net{*s->load_balancer_ip, 32},
                                 "LoadBalancer IP of service " + s->key());

  for (size_t i = 0; i < p.routers.size(); ++i) {
    const auto& r = p.routers[i];
    if (!r.runs_frr) continue;
    FrrPlan f = frr_instance(p, "router/" + r.name, r.name, r.netns, r.asn, r.ip);
    f.multipath = true;
    // ECMP spreads connections (hash on the 5-tuple), as data-centre switches do.
    p.sysctls.push_back({r.netns, "net/ipv4/fib_multipath_hash_policy", "1"});
    f.expected = fabric_routes;
    if (r.name == "spine") {
      for (size_t k = 0; k < t.racks.size(); ++k) {
        const auto& rack = t.racks[k];
        f.peers.push_back({cfg.fabric_subnet.at(2 * k + 1), rack.asn, "router/" + rack.name, true});
        f.expected.emplace_back(rack.subnet, "subnet of rack " + rack.name);
        f.networks.emplace_back(Ipv4Net{cfg.fabric_subnet.at(2 * k), 31},
                                "the link to rack " + rack.name +
                                    ", so that every rack reaches the fabric's addresses");
      }
    } else {
      if (r.name != "lan") {
        f.networks.emplace_back(r.subnet, "this rack's subnet, for the rest of the fabric");
        size_t k = static_cast<size_t>(i - 1);  // the spine comes first
        f.peers.push_back({cfg.fabric_subnet.at(2 * k), kSpineAsn, "router/spine"});
        for (size_t other = 0; other < t.racks.size(); ++other)
          if (other != k) {
            f.expected.emplace_back(t.racks[other].subnet, "subnet of rack " + t.racks[other].name);
            f.expected.emplace_back(Ipv4Net{cfg.fabric_subnet.at(2 * other), 31},
                                    "the spine's link to rack " + t.racks[other].name);
          }
      } else {
        p.sysctls.push_back({r.netns, "net/ipv4/ip_forward", "1"});
      }
      if (nodes_to_router)
        for (const auto& n : p.nodes)
          if (n.rack == (r.name == "lan" ? "" : r.name))
            f.peers.push_back({n.ip, cfg.node_asn, "node/" + n.name, true});
    }
    add_frr(context, p, std::move(f));
  }

  for (size_t i = 0; nodes_frr && i < p.nodes.size(); ++i) {
    const auto& n = p.nodes[i];
    FrrPlan f = frr_instance(p, "node/" + n.name, n.name, n.netns, cfg.node_asn, n.ip);
    f.announces_local = !lbs.empty();
    if (pods_bgp) f.networks.emplace_back(n.pod_cidr, "this node's pod CIDR (on cni0)");
    for (const auto* s : lbs)
      if (!s->external_local)
        f.networks.emplace_back(
            Ipv4Net{*s->load_balancer_ip, 32},
            "LoadBalancer IP of " + s->key() + " (externalTrafficPolicy Cluster: every node)");
    if (mesh)
      for (size_t k = 0; k < p.nodes.size(); ++k) {
        if (k == i) continue;
        const auto& other = p.nodes[k];
        // Of each pair the later node connects: the two never collide.
        f.peers.push_back({other.ip, cfg.node_asn, "node/" + other.name, k > i});
      }
    if (nodes_to_router) {
      const auto& router = *std::find_if(
          p.routers.begin(), p.routers.end(),
          [&](const RouterPlan& r) { return n.rack.empty() ? r.name == "lan" : r.name == n.rack; });
      // With peering = "tor" every node has the same ASN: a pod route from
      // another node arrives with it in its path and would be dropped.
      f.peers.push_back({router.ip, router.asn, "router/" + router.name, false,
                         pods_bgp && cfg.peering == BgpPeering::tor});
    }
    if (pods_bgp)
      for (const auto& other : p.nodes)
        if (other.name != n.name)
          f.expected.emplace_back(other.pod_cidr, "pod CIDR of node/" + other.name);
    add_frr(context, p, std::move(f));
  }
  // Every zebra first: their sockets are up by the time the bgpds start.
  std::stable_partition(p.daemons.begin(), p.daemons.end(),
                        [](const DaemonPlan& d) { return d.name.rfind("zebra", 0) == 0; });
}

PeerLines bgp_peer_lines(const FrrPlan& f, const BgpPeer& peer) {
  auto ip = peer.ip.str();
  PeerLines lines;
  lines.router = {fmt::format("neighbor {} remote-as {}", ip, peer.asn),
                  fmt::format("neighbor {} description {} ({})", ip, peer.target,
                              peer.asn == f.asn ? "iBGP" : "eBGP"),
                  peer.passive ? fmt::format("neighbor {} passive", ip)
                               : fmt::format("neighbor {} timers connect 1", ip)};
  if (peer.allowas_in) lines.address_family.push_back(fmt::format("neighbor {} allowas-in 1", ip));
  return lines;
}

std::string frr_config(const Plan& plan, const FrrPlan& f) {
  std::string out = fmt::format(
      "! FRR configuration of {} in lab \"{}\", written by knetlab.\n"
      "! bgpd reads this file at start; `knetlab vtysh {}` opens FRR's shell here\n"
      "! (try: show bgp summary, show ip bgp, show ip route).\n"
      "! Data-centre defaults: 3 s keepalives, 9 s hold time, updates sent at once.\n"
      "frr defaults datacenter\n"
      "hostname {}\n"
      "log file {}/bgpd.log\n"
      "log timestamp precision 3\n"
      "!\n"
      "router bgp {}\n"
      " bgp router-id {}\n"
      " ! Exchange routes with eBGP peers without a route-map (FRR 8 asks for one).\n"
      " no bgp ebgp-requires-policy\n"
      " ! Send a new session its routes after 0.1 s instead of batching them for 1 s.\n"
      " coalesce-time 100\n",
      f.target, plan.lab, f.target, f.name, f.dir, f.asn, f.router_id.str());
  if (f.announces_local)
    out +=
        " ! Announce LoadBalancer /32s that no table holds: kube-proxy's rules catch them.\n"
        " ! knetlab's controller adds and withdraws those of externalTrafficPolicy Local\n"
        " ! services at run time, as nodes gain and lose ready endpoints (MetalLB style).\n"
        " no bgp network import-check\n";
  if (f.multipath && f.target == "router/spine")
    out +=
        " ! Paths through different racks have different AS paths of equal length:\n"
        " ! count them as equal, so that a LoadBalancer IP gets an ECMP route.\n"
        " bgp bestpath as-path multipath-relax\n";
  for (const auto& peer : f.peers) {
    auto lines = bgp_peer_lines(f, peer).router;
    out += fmt::format(" !\n {}\n {}\n", lines[0], lines[1]);
    if (peer.passive)
      out +=
          fmt::format(" ! {} opens the session: when both sides connect at once, BGP drops one.\n",
                      peer.target);
    else
      out += " ! Retry every second while the peer is not up yet.\n";
    out += fmt::format(" {}\n", lines[2]);
  }
  out += " !\n address-family ipv4 unicast\n";
  for (const auto& [net, why] : f.networks)
    out += fmt::format("  ! {}\n  network {}\n", why, net.str());
  if (f.multipath)
    out += "  ! Install up to 16 equal paths as one ECMP route.\n  maximum-paths 16\n";
  for (const auto& peer : f.peers)
    if (peer.allowas_in)
      out += fmt::format(
          "  ! Every node has ASN {}: a pod route of a node in another rack arrives with\n"
          "  ! it in its AS path. Accept it once, or no node would learn another's pods.\n"
          "  {}\n",
          f.asn, bgp_peer_lines(f, peer).address_family.at(0));
  out += " exit-address-family\n!\n";
  return out;
}

}  // namespace knl
