#include "knetlab/plan/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "knetlab/plan/cni.h"
#include "knetlab/plan/dns.h"
#include "knetlab/plan/gateway.h"
#include "knetlab/plan/policy.h"
#include "knetlab/plan/scheduler.h"
#include "knetlab/topology/schema.h"
#include "knetlab/util/error.h"
#include "knetlab/util/hash.h"
#include "planner.h"

namespace knl {

namespace {

// A locally administered unicast MAC derived from `seed`.
std::string derived_mac(const std::string& seed) {
  uint32_t h = fnv1a(seed), g = fnv1a(seed + "#");
  return fmt::format("0e:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", (h >> 24) & 0xff, (h >> 16) & 0xff,
                     (h >> 8) & 0xff, h & 0xff, g & 0xff);
}

// An interface named after what it leads to: readable when it fits IFNAMSIZ.
std::string port_name(const std::string& prefix, const std::string& name) {
  auto readable = prefix + name;
  if (readable.size() <= 15) return readable;
  return fmt::format("{}{:08x}", prefix, fnv1a(name));
}

// The LAN switch's port for a node or host.
std::string lan_port_name(char kind, const std::string& name) {
  return port_name(fmt::format("{}-", kind), name);
}

}  // namespace

std::string netns_prefix(const std::string& lab) {
  return "knl-" + lab + "-";
}
std::string node_netns(const std::string& lab, const std::string& node) {
  return netns_prefix(lab) + "n-" + node;
}
std::string host_netns(const std::string& lab, const std::string& host) {
  return netns_prefix(lab) + "h-" + host;
}
std::string pod_netns(const std::string& lab, const std::string& ns, const std::string& pod) {
  return netns_prefix(lab) + "p-" + ns + "-" + pod;
}
std::string lan_netns(const std::string& lab) {
  return netns_prefix(lab) + "lan";
}
std::string router_netns(const std::string& lab, const std::string& router) {
  if (router == "lan") return lan_netns(lab);
  if (router == "spine") return netns_prefix(lab) + "spine";
  return netns_prefix(lab) + "r-" + router;
}
std::string pod_veth_name(const std::string& ns, const std::string& pod) {
  return fmt::format("veth{:08x}", fnv1a(ns + "/" + pod));
}

namespace {

class Planner {
 public:
  Planner(const Topology& t, const PlanContext& c) : t_(t), c_(c) {}

  Plan run() {
    p_.lab = t_.name;
    p_.file = t_.file;
    p_.network = t_.network;
    p_.run_dir = c_.run_root + "/" + t_.name;
    p_.bin_dir = c_.bin_dir;
    lans();
    nodes();
    hosts();
    overlay();
    pods();
    p_.services = plan_services(t_);
    p_.namespace_labels = namespace_labels(t_.namespaces);
    p_.network_policies = t_.network_policies;
    p_.ingresses = t_.ingresses;
    p_.gateways = t_.gateways;
    p_.http_routes = t_.http_routes;
    api_server_endpoints();
    for (const auto& pod : p_.pods)
      if (pod.serves_dns())
        for (auto& f : dns_pod_files(p_, pod)) p_.files.push_back(std::move(f));
      else if (pod.runs_nginx())
        for (auto& f : nginx_pod_files(p_, pod)) p_.files.push_back(std::move(f));
    cloud_load_balancer();
    plan_bgp(t_, c_, p_);
    return std::move(p_);
  }

  Plan one_pod(const Plan& existing, const Pod& pod, Ipv4 ip) {
    p_.lab = existing.lab, p_.file = existing.file, p_.network = existing.network;
    p_.run_dir = existing.run_dir, p_.bin_dir = existing.bin_dir;
    p_.nodes = existing.nodes;
    std::set<std::string> veths;
    for (const auto& other : existing.pods)
      if (other.node == pod.node && !other.host_network)
        veths.insert(pod_veth_name(other.namespace_, other.name));
    add_pod(pod, ip, veths);
    if (p_.pods.back().serves_dns() || p_.pods.back().runs_nginx()) {
      auto with = existing;
      with.pods.push_back(p_.pods.back());
      const auto& added = p_.pods.back();
      for (auto& f : added.serves_dns() ? dns_pod_files(with, added) : nginx_pod_files(with, added))
        p_.files.push_back(std::move(f));
    }
    return std::move(p_);
  }

 private:
  const Network& net() const { return t_.network; }

  void add_netns(const std::string& name, NetnsRole role) { p_.namespaces.push_back({name, role}); }

  // A layer-2 segment: a bridge `lan0` in its router's namespace, which is
  // also the segment's gateway (.1).
  struct Lan {
    std::string netns;
    Ipv4Net subnet;
    Ipv4 gateway;
    uint64_t next = 2;  // the next machine's address: .2 upwards, nodes first
  };

  // The underlay: without racks one LAN namespace; with racks one router per
  // rack holding the rack's LAN, each linked to the spine by a /31.
  void lans() {
    if (t_.racks.empty()) {
      p_.lan_netns = lan_netns(t_.name);
      p_.lan_gateway = net().node_subnet.at(1);
      add_lan("", p_.lan_netns, net().node_subnet, NetnsRole::lan);
      p_.routers.push_back({"lan", p_.lan_netns, kSpineAsn, p_.lan_gateway, net().node_subnet});
      return;
    }
    const auto fabric = net().bgp_or_default().fabric_subnet;
    const auto spine = router_netns(t_.name, "spine");
    add_netns(spine, NetnsRole::router);
    p_.sysctls.push_back({spine, "net/ipv4/ip_forward", "1"});
    p_.routers.push_back({"spine", spine, kSpineAsn, fabric.at(0), {}, true});
    for (size_t i = 0; i < t_.racks.size(); ++i) {
      const auto& rack = t_.racks[i];
      auto netns = router_netns(t_.name, rack.name);
      add_lan(rack.name, netns, rack.subnet, NetnsRole::router);
      p_.sysctls.push_back({netns, "net/ipv4/ip_forward", "1"});
      p_.links.push_back({.kind = LinkKind::veth,
                          .netns = spine,
                          .name = port_name("to-", rack.name),
                          .mtu = net().mtu,
                          .peer_netns = netns,
                          .peer_name = "spine"});
      p_.addresses.push_back({spine, port_name("to-", rack.name), fabric.at(2 * i), 31});
      p_.addresses.push_back({netns, "spine", fabric.at(2 * i + 1), 31});
      p_.routers.push_back({rack.name, netns, rack.asn, rack.subnet.at(1), rack.subnet, true});
    }
  }

  void add_lan(const std::string& rack, const std::string& netns, Ipv4Net subnet, NetnsRole role) {
    add_netns(netns, role);
    p_.links.push_back(
        {.kind = LinkKind::bridge, .netns = netns, .name = "lan0", .mtu = net().mtu});
    p_.addresses.push_back({netns, "lan0", subnet.at(1), subnet.prefix});
    // The LAN stands for a physical switch: its frames do not pass the
    // namespace's iptables, as br_netfilter (loaded for pods' bridges) would
    // have them by default.
    for (const char* key :
         {"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-arptables"})
      p_.sysctls.push_back({netns, key, "0", true});
    lans_[rack] = Lan{netns, subnet, subnet.at(1)};
  }

  // The next address of `rack`'s LAN for a machine whose eth0 is in `netns`,
  // wired to the LAN's bridge, with its default route through the gateway.
  Ipv4 attach_to_lan(const std::string& rack, const std::string& netns, char kind,
                     const std::string& name) {
    auto& lan = lans_.at(rack);
    auto kept = c_.kept.machines.find(fmt::format("{}/{}", kind == 'n' ? "node" : "host", name));
    Ipv4 ip;
    if (kept != c_.kept.machines.end() && kind != 'b') {
      ip = kept->second;
    } else {
      // The next address that a running lab has not handed out already.
      std::set<Ipv4> taken;
      for (const auto& [key, address] : c_.kept.machines) taken.insert(address);
      do ip = lan.subnet.at(lan.next++);
      while (kind != 'b' && taken.count(ip));
    }
    p_.links.push_back({.kind = LinkKind::veth,
                        .netns = lan.netns,
                        .name = lan_port_name(kind, name),
                        .mtu = net().mtu,
                        .master = "lan0",
                        .peer_netns = netns,
                        .peer_name = "eth0"});
    p_.addresses.push_back({netns, "eth0", ip, lan.subnet.prefix});
    p_.routes.push_back({netns, Ipv4Net{}, lan.gateway, "eth0", false});
    return ip;
  }

  void nodes() {
    std::vector<Ipv4Net> fixed;
    for (const auto& n : t_.nodes)
      if (n.pod_cidr) fixed.push_back(*n.pod_cidr);
    for (const auto& [name, cidr] : c_.kept.pod_cidrs) fixed.push_back(cidr);
    uint64_t next_block = 0;
    const uint64_t block = uint64_t{1} << (32 - net().node_mask_size);
    for (size_t i = 0; i < t_.nodes.size(); ++i) {
      const auto& n = t_.nodes[i];
      NodePlan node{
          n.name, n.role, node_netns(t_.name, n.name), derived_mac(t_.name + "/" + n.name), {},
          {},     n.rack};
      if (n.pod_cidr) {
        node.pod_cidr = *n.pod_cidr;
      } else if (auto kept = c_.kept.pod_cidrs.find(n.name); kept != c_.kept.pod_cidrs.end()) {
        node.pod_cidr = kept->second;
      } else {
        // The next block of podSubnet that no node has fixed for itself.
        for (;; ++next_block) {
          if (next_block * block >= net().pod_subnet.size())
            fail_at(n.where, "",
                    fmt::format("podSubnet {} has no free /{} left for node \"{}\"",
                                net().pod_subnet.str(), net().node_mask_size, n.name));
          Ipv4Net candidate{net().pod_subnet.at(next_block * block), net().node_mask_size};
          if (std::none_of(fixed.begin(), fixed.end(),
                           [&](const Ipv4Net& f) { return f.overlaps(candidate); })) {
            node.pod_cidr = candidate;
            ++next_block;
            break;
          }
        }
      }
      add_netns(node.netns, NetnsRole::node);
      node.ip = attach_to_lan(n.rack, node.netns, 'n', node.name);
      if (external()) {
        // The plugins make the pods' links; what they read is written here.
        p_.files.push_back(
            {cni_conflist_path(p_.run_dir, node.name), render_conflist(net(), t_.name, node)});
        p_.files.push_back({cni_node_dir(p_.run_dir, node.name) + "/flannel/subnet.env",
                            flannel_subnet_env(net(), node)});
      } else {
        p_.links.push_back(
            {.kind = LinkKind::bridge, .netns = node.netns, .name = "cni0", .mtu = pod_mtu(net())});
        p_.addresses.push_back({node.netns, "cni0", node.pod_cidr.at(1), node.pod_cidr.prefix});
      }
      p_.sysctls.push_back({node.netns, "net/ipv4/ip_forward", "1"});
      // Pods of one node meet on its bridge: their packets pass the node's
      // network policies only through br_netfilter.
      if (!t_.network_policies.empty())
        p_.sysctls.push_back({node.netns, "net/bridge/bridge-nf-call-iptables", "1"});
      // Links made in the node from here on, the node's end of each pod's
      // veth, get no IPv6 link-local address, as the pod's end gets none:
      // each would send neighbour discovery, router solicitations and MLD
      // reports into its pod, and setting it up holds the kernel's rtnl
      // lock, which paces a deploy. Sysctls are set after the node's own
      // links (eth0, cni0, flannel.1), which keep theirs.
      p_.sysctls.push_back({node.netns, "net/ipv6/conf/default/addr_gen_mode", "1"});
      p_.nodes.push_back(node);
    }
  }

  void hosts() {
    for (size_t i = 0; i < t_.hosts.size(); ++i) {
      const auto& h = t_.hosts[i];
      HostPlan host{h.name, host_netns(t_.name, h.name), {}, h.rack, h.dns_names};
      add_netns(host.netns, NetnsRole::host);
      host.ip = attach_to_lan(h.rack, host.netns, 'h', host.name);
      p_.hosts.push_back(host);
    }
  }

  bool external() const { return net().cni == Cni::external; }

  // cni = "external" with routing = "host-gw": a route per remote node's
  // pod CIDR through that node, as flannel's host-gw backend sets.
  void host_gateway_routes() {
    if (!external() || net().cni_config->routing != CniRouting::host_gw) return;
    for (const auto& node : p_.nodes)
      for (const auto& remote : p_.nodes)
        if (remote.name != node.name)
          p_.routes.push_back({node.netns, remote.pod_cidr, remote.ip, "eth0", false});
  }

  // flannel's vxlan backend: flannel.1 per node, static entries per remote node.
  void overlay() {
    host_gateway_routes();
    if (net().cni != Cni::vxlan && !(external() && net().cni_config->routing == CniRouting::vxlan))
      return;
    for (const auto& node : p_.nodes) {
      p_.links.push_back({.kind = LinkKind::vxlan,
                          .netns = node.netns,
                          .name = "flannel.1",
                          .mtu = net().mtu - 50,
                          .mac = node.vtep_mac,
                          .vni = 1,
                          .local = node.ip,
                          .port = 8472,
                          .underlay = "eth0"});
      p_.addresses.push_back({node.netns, "flannel.1", node.pod_cidr.network, 32});
      for (const auto& remote : p_.nodes) {
        if (remote.name == node.name) continue;
        p_.routes.push_back(
            {node.netns, remote.pod_cidr, remote.pod_cidr.network, "flannel.1", true});
        p_.neighbours.push_back(
            {node.netns, "flannel.1", remote.pod_cidr.network, remote.vtep_mac});
        p_.fdb.push_back({node.netns, "flannel.1", remote.vtep_mac, remote.ip});
      }
    }
  }

  const NodePlan& node_named(const std::string& name) const {
    return *std::find_if(p_.nodes.begin(), p_.nodes.end(),
                         [&](const NodePlan& n) { return n.name == name; });
  }

  ContainerPlan container(const PodPlan& pod, const Container& c) {
    ContainerPlan out{c.name, c.image, {},         fmt::format("{}/{}.log", pod.dir, c.name),
                      {},     c.ports, c.readiness};
    if (!c.command.empty()) {
      out.argv = c.command;
      out.argv.insert(out.argv.end(), c.args.begin(), c.args.end());
    } else {
      auto it = c_.images.find(c.image);
      if (it == c_.images.end()) {
        std::vector<std::string> names;
        for (const auto& [name, spec] : c_.images) names.push_back(name);
        auto guess = nearest(c.image, names);
        fail_at(c.where_image, "",
                fmt::format("container \"{}\" of pod \"{}\": no image \"{}\" (images: {}){}",
                            c.name, pod.key(), c.image, fmt::join(names, ", "),
                            guess.empty() ? "" : fmt::format("; did you mean \"{}\"?", guess)));
      }
      out.argv.push_back(it->second.program);
      // An image's own arguments may name the pod's folder, where the files
      // it needs are rendered.
      for (auto arg : c.args.empty() ? it->second.args : c.args) {
        if (c.args.empty())
          for (auto at = arg.find("{dir}"); at != std::string::npos; at = arg.find("{dir}"))
            arg.replace(at, 5, pod.dir);
        out.argv.push_back(std::move(arg));
      }
    }
    for (const auto& port : c.ports)
      if (port.protocol == Protocol::tcp) out.tcp_ports.push_back(port.container_port);
    return out;
  }

  // Every pod: the deployments' replicas (named DEPLOYMENT-INDEX), then the
  // bare pods, in file order, then the cluster's own. Running pods (apply) stay on their nodes with
  // their addresses; then, in that order, a pinned pod goes to its node and
  // the scheduler places each other one, as a cluster would create them;
  // each pod then takes the next address of its node.
  void pods() {
    std::vector<Pod> all;
    std::map<std::string, const Deployment*> owners;
    std::vector<Pod> system;
    for (const auto& d : t_.deployments) {
      owners[d.namespace_ + "/" + d.name] = &d;
      for (int i = 0; i < d.replicas; ++i)
        (d.system ? system : all)
            .push_back(
                {fmt::format("{}-{}", d.name, i), d.namespace_, "", d.spec, d.name, d.where});
      auto& next = p_.cursors.next_replica[d.namespace_ + "/" + d.name];
      auto kept = c_.kept.cursors.next_replica.find(d.namespace_ + "/" + d.name);
      next = std::max(d.replicas, kept == c_.kept.cursors.next_replica.end() ? 0 : kept->second);
    }
    all.insert(all.end(), t_.pods.begin(), t_.pods.end());
    // The cluster's own pods last: the file's pods are where it places them.
    all.insert(all.end(), system.begin(), system.end());
    auto running = [&](const Pod& pod) -> const RunningPod* {
      auto it = c_.kept.pods.find(pod.namespace_ + "/" + pod.name);
      return it == c_.kept.pods.end() ? nullptr : &it->second;
    };
    auto owner_of = [](const Pod& pod) {
      return pod.deployment.empty() ? std::string() : pod.namespace_ + "/" + pod.deployment;
    };
    Scheduler scheduler(p_.nodes);
    PodAddresses addresses(p_.nodes, c_.kept.cursors.last_pod_ip);
    std::vector<bool> kept(all.size(), false);
    for (size_t i = 0; i < all.size(); ++i) {
      auto& pod = all[i];
      const auto* run = running(pod);
      if (!run || (!pod.node.empty() && pod.node != run->node) ||
          !scheduler.place(run->node, pod.spec.host_network, owner_of(pod)))
        continue;
      pod.node = run->node;
      kept[i] = true;
      if (!pod.spec.host_network) addresses.use(pod.node, run->ip);
    }
    for (size_t i = 0; i < all.size(); ++i) {
      auto& pod = all[i];
      if (kept[i]) continue;
      if (!pod.node.empty()) {
        if (!scheduler.place(pod.node, pod.spec.host_network, owner_of(pod)))
          fail_at(pod.where, "",
                  fmt::format("node \"{}\" has room for {} pods in its pod CIDR; pod \"{}\" is "
                              "one too many: spread the pods over more nodes or lower nodeMaskSize",
                              pod.node, scheduler.room(pod.node), pod.name));
        continue;
      }
      std::vector<std::string> eligible;
      if (!pod.deployment.empty())
        eligible = owners.at(pod.namespace_ + "/" + pod.deployment)->nodes;
      auto node = scheduler.pick(eligible, pod.spec.host_network, owner_of(pod));
      if (!node)
        fail_at(pod.where, "",
                fmt::format(
                    "no node has room for pod \"{}\": the pod CIDR of every node it may "
                    "go to ({}) is full; add nodes or lower nodeMaskSize",
                    pod.name,
                    eligible.empty() ? "any node" : fmt::format("{}", fmt::join(eligible, ", "))));
      pod.node = *node;
    }
    std::map<std::string, std::set<std::string>> veths;
    for (size_t i = 0; i < all.size(); ++i) {
      const auto& pod = all[i];
      const auto& node = node_named(pod.node);
      // With cni = "external" a new pod's address is its plugins' to give.
      Ipv4 ip = node.ip;
      if (!pod.spec.host_network)
        ip = kept[i] ? running(pod)->ip : external() ? Ipv4{} : addresses.allocate(pod.node);
      add_pod(pod, ip, veths[node.name]);
    }
    p_.cursors.last_pod_ip = addresses.last();
    std::set<std::string> seen;
    for (const auto& ns : p_.namespaces)
      if (!seen.insert(ns.name).second)
        throw UserError(
            fmt::format("{}: two objects map to the network namespace {}; rename one "
                        "of them (pod and namespace names joined by '-' collide)",
                        t_.file, ns.name));
  }

  // One pod at `ip`: its namespace, veth, addresses, route, files and
  // containers. `node_veths` holds the veth names already on its node.
  void add_pod(const Pod& pod, Ipv4 ip, std::set<std::string>& node_veths) {
    const auto& node = node_named(pod.node);
    PodPlan pp;
    pp.name = pod.name, pp.namespace_ = pod.namespace_, pp.node = pod.node;
    pp.deployment = pod.deployment, pp.ip = ip, pp.node_netns = node.netns;
    pp.host_network = pod.spec.host_network, pp.labels = pod.spec.labels;
    pp.annotations = pod.spec.annotations;
    // A deployment's pods with a subdomain are named as a StatefulSet's.
    pp.hostname = pod.spec.hostname.empty() ? pod.name : pod.spec.hostname;
    pp.subdomain = pod.spec.subdomain;
    pp.dir = fmt::format("{}/pods/{}_{}", p_.run_dir, pod.namespace_, pod.name);
    if (pod.spec.host_network) {
      pp.netns = node.netns;
    } else {
      pp.netns = pod_netns(t_.name, pod.namespace_, pod.name);
      add_netns(pp.netns, NetnsRole::pod);
    }
    if (!pod.spec.host_network && !external()) {
      auto veth = pod_veth_name(pod.namespace_, pod.name);
      if (!node_veths.insert(veth).second)
        fail_at(pod.where, "",
                fmt::format("pod \"{}\" hashes to the same veth name {} as "
                            "another pod on node \"{}\"; rename it",
                            pp.key(), veth, node.name));
      p_.links.push_back({.kind = LinkKind::veth,
                          .netns = node.netns,
                          .name = veth,
                          .mtu = pod_mtu(net()),
                          .master = "cni0",
                          .hairpin = true,
                          .peer_netns = pp.netns,
                          .peer_name = "eth0"});
      p_.addresses.push_back({pp.netns, "eth0", pp.ip, node.pod_cidr.prefix});
      p_.routes.push_back({pp.netns, Ipv4Net{}, node.pod_cidr.at(1), "eth0", false});
    }
    p_.files.push_back({pp.dir + "/resolv.conf", pod_resolv_conf(net(), pod.namespace_, pod.spec)});
    p_.files.push_back({pp.dir + "/hosts", pod_hosts_file(net(), pp)});
    p_.files.push_back({pp.dir + "/hostname", pp.hostname + "\n"});
    for (const auto& c : pod.spec.containers) pp.containers.push_back(container(pp, c));
    p_.pods.push_back(std::move(pp));
  }

  // The `kubernetes` service's endpoints: the control-plane nodes' 6443, as
  // the API servers register themselves.
  void api_server_endpoints() {
    for (auto& s : p_.services) {
      if (s.key() != "default/kubernetes" || s.ports.size() != 1) continue;
      s.fixed_endpoints.assign(1, {});
      for (const auto& n : p_.nodes)
        if (n.role == NodeRole::control_plane)
          s.fixed_endpoints[0].push_back({n.ip, s.ports[0].target_port, n.name, ""});
    }
  }

  // The emulated cloud's load balancer: a namespace on the LAN that outside
  // hosts route LoadBalancer IPs to, and that forwards each connection to a
  // node (ECMP, hashed on the 5-tuple) with the destination unchanged; the
  // controller keeps its routes on the nodes that pass its health check.
  void cloud_load_balancer() {
    if (net().load_balancer_mode != LoadBalancerMode::cloud) return;
    std::vector<Ipv4> lb_ips;
    for (const auto& s : p_.services)
      if (s.load_balancer_ip) lb_ips.push_back(*s.load_balancer_ip);
    if (lb_ips.empty()) return;
    p_.lb_netns = netns_prefix(t_.name) + "lb";
    p_.lb_ip = net().node_subnet.at(net().node_subnet.size() - 2);
    if (p_.lb_ip.value < net().node_subnet.at(2 + t_.nodes.size() + t_.hosts.size()).value ||
        (p_.lb_ip >= net().lb_pool_first && p_.lb_ip <= net().lb_pool_last))
      throw UserError(fmt::format(
          "{}: the cloud load balancer takes the last address of nodeSubnet {} ({}), which a "
          "node, host or loadBalancerPool already uses; widen nodeSubnet",
          t_.file, net().node_subnet.str(), p_.lb_ip.str()));
    add_netns(p_.lb_netns, NetnsRole::host);
    auto& lan = lans_.at("");
    auto next = lan.next;
    lan.next = net().node_subnet.size() - 2;
    attach_to_lan("", p_.lb_netns, 'b', "cloud-lb");
    lan.next = next;
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"net/ipv4/ip_forward", "1"},
             {"net/ipv4/conf/all/send_redirects", "0"},
             {"net/ipv4/conf/eth0/send_redirects", "0"},
             {"net/ipv4/fib_multipath_hash_policy", "1"}})
      p_.sysctls.push_back({p_.lb_netns, key, value});
    for (const auto& host : p_.hosts)
      for (const auto& ip : lb_ips)
        p_.routes.push_back({host.netns, Ipv4Net{ip, 32}, p_.lb_ip, "eth0", false});
  }

  const Topology& t_;
  const PlanContext& c_;
  Plan p_;
  std::map<std::string, Lan> lans_;  // by rack name; "" without racks
};

}  // namespace

Plan make_plan(const Topology& topology, const PlanContext& context) {
  return Planner(topology, context).run();
}

Plan plan_added_pod(const Topology& topology, const PlanContext& context, const Plan& existing,
                    const Pod& pod, Ipv4 ip) {
  return Planner(topology, context).one_pod(existing, pod, ip);
}

namespace {

template <typename T>
void append(std::vector<T>& to, std::vector<T>&& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

template <typename T, typename Pred>
void drop_if(std::vector<T>& list, Pred pred) {
  list.erase(std::remove_if(list.begin(), list.end(), pred), list.end());
}

}  // namespace

void adopt_fragment(Plan& plan, Plan&& fragment) {
  append(plan.pods, std::move(fragment.pods));
  append(plan.namespaces, std::move(fragment.namespaces));
  append(plan.links, std::move(fragment.links));
  append(plan.addresses, std::move(fragment.addresses));
  append(plan.routes, std::move(fragment.routes));
  append(plan.neighbours, std::move(fragment.neighbours));
  append(plan.fdb, std::move(fragment.fdb));
  append(plan.sysctls, std::move(fragment.sysctls));
  append(plan.files, std::move(fragment.files));
}

void forget_pod(Plan& plan, const std::string& key) {
  auto it = std::find_if(plan.pods.begin(), plan.pods.end(),
                         [&](const PodPlan& p) { return p.key() == key; });
  if (it == plan.pods.end()) return;
  const auto pod = *it;
  plan.pods.erase(it);
  const auto dir = pod.dir + "/";
  drop_if(plan.files, [&](const FileSpec& f) { return f.path.rfind(dir, 0) == 0; });
  if (pod.host_network) return;
  const auto& ns = pod.netns;
  drop_if(plan.namespaces, [&](const NetnsSpec& n) { return n.name == ns; });
  drop_if(plan.links, [&](const LinkSpec& l) { return l.netns == ns || l.peer_netns == ns; });
  drop_if(plan.addresses, [&](const AddressSpec& a) { return a.netns == ns; });
  drop_if(plan.routes, [&](const RouteSpec& r) { return r.netns == ns; });
  drop_if(plan.neighbours, [&](const NeighbourSpec& n) { return n.netns == ns; });
  drop_if(plan.fdb, [&](const FdbSpec& f) { return f.netns == ns; });
  drop_if(plan.sysctls, [&](const SysctlSpec& s) { return s.netns == ns; });
}

}  // namespace knl
