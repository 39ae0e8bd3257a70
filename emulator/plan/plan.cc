#include "knetlab/plan/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "knetlab/topology/schema.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

uint32_t fnv1a(const std::string& text) {
  uint32_t h = 2166136261u;
  for (unsigned char c : text) h = (h ^ c) * 16777619u;
  return h;
}

// A locally administered unicast MAC derived from `seed`.
std::string derived_mac(const std::string& seed) {
  uint32_t h = fnv1a(seed), g = fnv1a(seed + "#");
  return fmt::format("0e:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", (h >> 24) & 0xff, (h >> 16) & 0xff,
                     (h >> 8) & 0xff, h & 0xff, g & 0xff);
}

// The LAN switch's port for a node or host: readable when the name fits IFNAMSIZ.
std::string lan_port_name(char kind, const std::string& name) {
  auto readable = fmt::format("{}-{}", kind, name);
  if (readable.size() <= 15) return readable;
  return fmt::format("{}-{:08x}", kind, fnv1a(name));
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
    lan();
    nodes();
    hosts();
    overlay();
    pods();
    p_.services = plan_services(t_);
    cloud_load_balancer();
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
    return std::move(p_);
  }

 private:
  const Network& net() const { return t_.network; }

  void add_netns(const std::string& name, NetnsRole role) {
    p_.namespaces.push_back({name, role});
    p_.loopbacks.emplace_back(name, "lo");
  }

  // The underlay: one switch namespace whose bridge is every machine's LAN.
  void lan() {
    p_.lan_netns = lan_netns(t_.name);
    p_.lan_gateway = net().node_subnet.at(1);
    add_netns(p_.lan_netns, NetnsRole::lan);
    p_.links.push_back(
        {.kind = LinkKind::bridge, .netns = p_.lan_netns, .name = "lan0", .mtu = net().mtu});
    p_.addresses.push_back({p_.lan_netns, "lan0", p_.lan_gateway, net().node_subnet.prefix});
  }

  // A machine on the LAN: eth0 in `netns`, its switch port in the LAN namespace.
  void attach_to_lan(const std::string& netns, char kind, const std::string& name, Ipv4 ip) {
    p_.links.push_back({.kind = LinkKind::veth,
                        .netns = p_.lan_netns,
                        .name = lan_port_name(kind, name),
                        .mtu = net().mtu,
                        .master = "lan0",
                        .peer_netns = netns,
                        .peer_name = "eth0"});
    p_.addresses.push_back({netns, "eth0", ip, net().node_subnet.prefix});
    p_.routes.push_back({netns, Ipv4Net{}, p_.lan_gateway, "eth0", false});
  }

  void nodes() {
    std::vector<Ipv4Net> fixed;
    for (const auto& n : t_.nodes)
      if (n.pod_cidr) fixed.push_back(*n.pod_cidr);
    uint64_t next_block = 0;
    const uint64_t block = uint64_t{1} << (32 - net().node_mask_size);
    for (size_t i = 0; i < t_.nodes.size(); ++i) {
      const auto& n = t_.nodes[i];
      NodePlan node{n.name,
                    n.role,
                    node_netns(t_.name, n.name),
                    derived_mac(t_.name + "/" + n.name),
                    net().node_subnet.at(2 + i),
                    {}};
      if (n.pod_cidr) {
        node.pod_cidr = *n.pod_cidr;
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
      attach_to_lan(node.netns, 'n', node.name, node.ip);
      int pod_mtu = net().cni == "vxlan" ? net().mtu - 50 : net().mtu;
      p_.links.push_back(
          {.kind = LinkKind::bridge, .netns = node.netns, .name = "cni0", .mtu = pod_mtu});
      p_.addresses.push_back({node.netns, "cni0", node.pod_cidr.at(1), node.pod_cidr.prefix});
      p_.sysctls.push_back({node.netns, "net/ipv4/ip_forward", "1"});
      p_.nodes.push_back(node);
    }
  }

  void hosts() {
    for (size_t i = 0; i < t_.hosts.size(); ++i) {
      const auto& h = t_.hosts[i];
      HostPlan host{h.name, host_netns(t_.name, h.name),
                    net().node_subnet.at(2 + t_.nodes.size() + i)};
      add_netns(host.netns, NetnsRole::host);
      attach_to_lan(host.netns, 'h', host.name, host.ip);
      p_.hosts.push_back(host);
    }
  }

  // flannel's vxlan backend: flannel.1 per node, static entries per remote node.
  void overlay() {
    if (net().cni != "vxlan") return;
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
    ContainerPlan out{c.name, {},      fmt::format("{}/{}.log", pod.dir, c.name),
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
      const auto& args = c.args.empty() ? it->second.args : c.args;
      out.argv.insert(out.argv.end(), args.begin(), args.end());
    }
    for (const auto& port : c.ports)
      if (port.protocol == "TCP") out.tcp_ports.push_back(port.container_port);
    return out;
  }

  std::string resolv_conf(const std::string& ns) const {
    auto dns = net().service_subnet.at(10);
    const auto& d = net().dns_domain;
    return fmt::format("search {0}.svc.{1} svc.{1} {1}\nnameserver {2}\noptions ndots:5\n", ns, d,
                       dns.str());
  }

  void pods() {
    std::map<std::string, uint64_t> next_ip;
    std::map<std::string, std::set<std::string>> veths;
    for (const auto& pod : t_.pods) {
      const auto& node = node_named(pod.node);
      auto ip = pod.spec.host_network ? node.ip : node.pod_cidr.at(2 + next_ip[node.name]++);
      add_pod(pod, ip, veths[node.name]);
    }
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
    PodPlan pp{pod.name,
               pod.namespace_,
               pod.node,
               pod.deployment,
               ip,
               {},
               node.netns,
               pod.spec.host_network,
               pod.spec.labels,
               fmt::format("{}/pods/{}_{}", p_.run_dir, pod.namespace_, pod.name),
               {}};
    if (pod.spec.host_network) {
      pp.netns = node.netns;
    } else {
      pp.netns = pod_netns(t_.name, pod.namespace_, pod.name);
      auto veth = pod_veth_name(pod.namespace_, pod.name);
      if (!node_veths.insert(veth).second)
        fail_at(pod.where, "",
                fmt::format("pod \"{}\" hashes to the same veth name {} as "
                            "another pod on node \"{}\"; rename it",
                            pp.key(), veth, node.name));
      add_netns(pp.netns, NetnsRole::pod);
      int mtu = net().cni == "vxlan" ? net().mtu - 50 : net().mtu;
      p_.links.push_back({.kind = LinkKind::veth,
                          .netns = node.netns,
                          .name = veth,
                          .mtu = mtu,
                          .master = "cni0",
                          .hairpin = true,
                          .peer_netns = pp.netns,
                          .peer_name = "eth0"});
      p_.addresses.push_back({pp.netns, "eth0", pp.ip, node.pod_cidr.prefix});
      p_.routes.push_back({pp.netns, Ipv4Net{}, node.pod_cidr.at(1), "eth0", false});
    }
    p_.files.push_back({pp.dir + "/resolv.conf", resolv_conf(pod.namespace_)});
    p_.files.push_back(
        {pp.dir + "/hosts",
         fmt::format("# Kubernetes-managed hosts file (knetlab).\n127.0.0.1\tlocalhost\n"
                     "::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{}\n",
                     pp.ip.str(), pod.name)});
    p_.files.push_back({pp.dir + "/hostname", pod.name + "\n"});
    for (const auto& c : pod.spec.containers) pp.containers.push_back(container(pp, c));
    p_.pods.push_back(std::move(pp));
  }

  // The emulated cloud's load balancer: a namespace on the LAN that outside
  // hosts route LoadBalancer IPs to, and that forwards each connection to a
  // node (ECMP, hashed on the 5-tuple) with the destination unchanged; the
  // controller keeps its routes on the nodes that pass its health check.
  void cloud_load_balancer() {
    if (net().load_balancer_mode != "cloud") return;
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
    attach_to_lan(p_.lb_netns, 'b', "cloud-lb", p_.lb_ip);
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
};

}  // namespace

Plan make_plan(const Topology& topology, const PlanContext& context) {
  return Planner(topology, context).run();
}

Plan plan_added_pod(const Topology& topology, const PlanContext& context, const Plan& existing,
                    const Pod& pod, Ipv4 ip) {
  return Planner(topology, context).one_pod(existing, pod, ip);
}

}  // namespace knl
