#include "knetlab/realize/controller.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <numeric>

#include "knetlab/kernel/nftables.h"
#include "knetlab/realize/routing.h"
#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// "ns/name" or "name" (then in any namespace, if only one has it).
bool matches(const std::string& wanted, const std::string& ns, const std::string& name) {
  return wanted == name || wanted == ns + "/" + name;
}

int pod_index(const std::string& pod, const std::string& deployment) {
  auto suffix = pod.substr(deployment.size() + 1);
  return std::all_of(suffix.begin(), suffix.end(), ::isdigit) && !suffix.empty() ? std::stoi(suffix)
                                                                                 : -1;
}

}  // namespace

struct Controller::NodeProxy {
  ProxyNode node;
  std::string netns;
  std::unique_ptr<NftSession> nft;
  std::map<std::string, NftService> applied;       // nftables: by service key
  std::vector<std::string> iptables_chains;        // iptables: KUBE- chains of the last sync
  std::set<std::string> stale_chains, stale_sets;  // nftables: flushed, deleted on a tick
};

Controller::Controller(Topology topology, PlanContext context, Plan plan,
                       std::map<std::string, PodProcesses> pods, Journal& journal, Kernel& kernel,
                       Runtime& runtime, ControllerOptions options)
    : topology_(std::move(topology)),
      context_(std::move(context)),
      plan_(std::move(plan)),
      pods_(std::move(pods)),
      journal_(journal),
      kernel_(kernel),
      runtime_(runtime),
      options_(std::move(options)) {
  index_services();
  for (const auto& e : journal_.entries()) {
    if (e.kind != JournalEntry::Kind::process) continue;
    if (e.name == kMountTemplateEntry) mount_template_ = e.process;
    if (e.name.rfind("daemon:", 0) == 0) daemons_[e.name.substr(7)].process = e.process;
  }
  for (const auto& [key, procs] : std::map(pods_)) adopt(key, procs);
  note_allocations();
  for (const auto& n : plan_.nodes) nodes_.push_back(make_proxy(n));
}

void Controller::adopt(const std::string& key, const PodProcesses& procs) {
  states_[key];
  pid_owner_[procs.sandbox.pid] = {key, ""};
  for (const auto& [name, p] : procs.containers) pid_owner_[p.pid] = {key, name};
  pods_[key] = procs;
}

void Controller::note_allocations() {
  for (const auto& pod : plan_.pods) {
    if (!pod.host_network && (!last_ip_.count(pod.node) || last_ip_[pod.node] < pod.ip))
      last_ip_[pod.node] = pod.ip;
    if (!pod.deployment.empty()) {
      auto& next = next_index_[pod.namespace_ + "/" + pod.deployment];
      next = std::max(next, pod_index(pod.name, pod.deployment) + 1);
    }
  }
}

std::unique_ptr<Controller::NodeProxy> Controller::make_proxy(const NodePlan& n) const {
  auto proxy = std::make_unique<NodeProxy>();
  proxy->node = {n.name,
                 n.ip,
                 plan_.network.pod_subnet,
                 plan_.network.service_subnet,
                 plan_.network.nftables_picker == "rules",
                 nft_tables_for(plan_.services.size())};
  proxy->netns = n.netns;
  return proxy;
}

Controller::~Controller() = default;

void Controller::event(const std::string& text) {
  spdlog::debug("{}", text);
  if (options_.event) options_.event(text);
}

void Controller::publish() {
  if (!options_.publish) return;
  std::set<std::string> ready_pods;
  for (const auto& p : plan_.pods)
    if (ready(p)) ready_pods.insert(p.key());
  options_.publish(plan_, pods_, endpoints_, ready_pods);
}

bool Controller::ready(const PodPlan& pod) const {
  auto it = states_.find(pod.key());
  if (it == states_.end()) return false;
  return !it->second.terminating && it->second.dead.empty() && it->second.unready.empty();
}

void Controller::start() {
  if (!plan_.services.empty()) {
    if (plan_.network.kube_proxy_mode == "nftables")
      for (auto& n : nodes_) n->nft = std::make_unique<NftSession>(n->netns);
    sync();
  }
  started_ = true;
  publish();
}

namespace {

std::string label_key(const std::string& namespace_, const std::string& key,
                      const std::string& value) {
  return namespace_ + "/" + key + "=" + value;
}

}  // namespace

void Controller::index_services() {
  services_by_label_.clear();
  for (size_t i = 0; i < plan_.services.size(); ++i) {
    const auto& s = plan_.services[i];
    if (s.selector.empty()) continue;  // selects no pod
    const auto& [key, value] = *s.selector.begin();
    services_by_label_[label_key(s.namespace_, key, value)].push_back(i);
  }
}

void Controller::sync(const std::set<std::string>& touched) {
  auto start = Clock::now();
  // Only services that may select a pod that changed: looking at all 10k
  // services took 8-10 ms right after a deploy, their memory gone from the
  // caches.
  std::vector<size_t> candidates;
  if (!started_ || touched.empty()) {
    candidates.resize(plan_.services.size());
    std::iota(candidates.begin(), candidates.end(), size_t{0});
  } else {
    for (const auto& p : plan_.pods) {
      if (!touched.count(p.key())) continue;
      for (const auto& [key, value] : p.labels) {
        auto it = services_by_label_.find(label_key(p.namespace_, key, value));
        if (it != services_by_label_.end())
          candidates.insert(candidates.end(), it->second.begin(), it->second.end());
      }
    }
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  }
  std::vector<const ServicePlan*> changed;
  std::map<std::string, ServiceEndpoints> before;
  auto is_ready = [&](const PodPlan& p) { return ready(p); };
  for (size_t i : candidates) {
    const auto& s = plan_.services[i];
    auto eps = service_endpoints(s, plan_.pods, is_ready);
    auto& current = endpoints_[s.key()];
    if (started_ && current == eps) continue;
    changed.push_back(&s);
    before[s.key()] = std::exchange(current, std::move(eps));
  }
  if (started_ && changed.empty()) return;
  auto rules_start = Clock::now();
  for (auto& n : nodes_) sync_node(*n, changed, endpoints_, !started_);
  double rules_seconds = seconds_since(rules_start);
  if (started_)
    for (const auto* s : changed) clear_udp_conntrack(*s, before[s->key()], endpoints_[s->key()]);
  if (!plan_.lb_netns.empty()) sync_load_balancer();
  sync_bgp_announcements();
  last_sync_seconds_ = seconds_since(start);
  last_sync_services_ = changed.size();
  event(
      fmt::format("kube-proxy ({}) synced {} service(s) on {} node(s) in {:.1f} ms "
                  "(rules {:.1f} ms)",
                  plan_.network.kube_proxy_mode, changed.size(), nodes_.size(),
                  last_sync_seconds_ * 1000, rules_seconds * 1000));
}

// Services per transaction of a node's first nftables load.
constexpr size_t kFirstLoadServices = 750;

void Controller::sync_node(NodeProxy& n, const std::vector<const ServicePlan*>& changed,
                           const EndpointMap& endpoints, bool first) {
  if (plan_.network.kube_proxy_mode == "nftables") {
    // One transaction per sync, except the first load, before the lab is
    // ready: the kernel walks the whole transaction for every anonymous set
    // a rule binds (each service's endpoint vmap): 10k services took 18 s as
    // one transaction, 3.3 s as transactions of 750 (smaller ones make
    // libnftables fetch the growing table more often).
    const size_t chunk = first ? kFirstLoadServices : std::max<size_t>(changed.size(), 1);
    for (size_t at = 0; at == 0 || at < changed.size(); at += chunk) {
      NftTransaction tx(!first);
      for (size_t i = at; i < std::min(at + chunk, changed.size()); ++i) {
        const auto& s = *changed[i];
        auto next = nft_service(n.node, s, endpoints.at(s.key()));
        auto& applied = n.applied[s.key()];
        tx.change(applied, next);
        applied = std::move(next);
      }
      if (first || !tx.empty()) n.nft->run((first && at == 0 ? nft_base(n.node) : "") + tx.str());
      for (const auto& c : tx.stale_chains()) n.stale_chains.insert(c);
      for (const auto& c : tx.stale_sets()) n.stale_sets.insert(c);
      for (const auto& c : tx.created()) n.stale_chains.erase(c), n.stale_sets.erase(c);
    }
    // libnftables keeps what it learnt of the ruleset and throws it away at
    // the next run once the ruleset changed: after the first, full load that
    // is every object of the table (16 ms at 10k services). A new context
    // starts empty.
    if (first) n.nft = std::make_unique<NftSession>(n.netns);
    return;
  }
  std::vector<std::string> chains;
  auto text = iptables_ruleset(n.node, plan_.services, endpoints, first, n.iptables_chains, chains);
  auto result = run_program(n.netns, {"iptables-restore", "--noflush", "-w"}, text);
  if (result.status != 0)
    throw SystemError(fmt::format("load iptables rules (iptables-restore) in netns {}: {}", n.netns,
                                  result.output),
                      0);
  n.iptables_chains = std::move(chains);
}

void Controller::clear_udp_conntrack(const ServicePlan& s, const ServiceEndpoints& before,
                                     const ServiceEndpoints& after) {
  for (size_t i = 0; i < s.ports.size(); ++i) {
    const auto& port = s.ports[i];
    if (port.protocol != "UDP" || i >= before.size()) continue;
    std::vector<std::vector<std::string>> commands;
    std::vector<std::string> destinations{s.cluster_ip->str()};
    if (s.load_balancer_ip) destinations.push_back(s.load_balancer_ip->str());
    // A service that had no endpoints answered with ICMP; those entries go.
    if (before[i].empty() && !after[i].empty())
      for (const auto& d : destinations)
        commands.push_back({"conntrack", "-D", "-p", "udp", "--orig-dst", d});
    for (const auto& gone : before[i]) {
      if (std::find(after[i].begin(), after[i].end(), gone) != after[i].end()) continue;
      for (const auto& d : destinations)
        commands.push_back(
            {"conntrack", "-D", "-p", "udp", "--orig-dst", d, "--dst-nat", gone.ip.str()});
      if (port.node_port)
        commands.push_back({"conntrack", "-D", "-p", "udp", "--orig-port-dst",
                            std::to_string(port.node_port), "--dst-nat", gone.ip.str()});
    }
    for (const auto& n : nodes_)
      for (const auto& c : commands) {
        // Exit status 1 means nothing matched, which is fine.
        auto r = run_program(n->netns, c);
        if (r.status > 1)
          spdlog::warn("conntrack in {} failed ({}): {}", n->netns, r.status, r.output);
      }
    if (!commands.empty())
      event(fmt::format("conntrack: cleared UDP entries of {} on every node",
                        service_port_name(s, port)));
  }
}

void Controller::sync_load_balancer() {
  for (const auto& s : plan_.services) {
    if (!s.load_balancer_ip) continue;
    const auto& eps = endpoints_[s.key()];
    // The cloud's health check: under Local only nodes with an endpoint pass
    // (kube-proxy's healthCheckNodePort answers 200 there); under Cluster all do.
    std::vector<Ipv4> targets;
    for (const auto& node : plan_.nodes) {
      bool has_local = std::any_of(eps.begin(), eps.end(), [&](const auto& list) {
        return std::any_of(list.begin(), list.end(),
                           [&](const Endpoint& e) { return e.node == node.name; });
      });
      if (!s.external_local || has_local) targets.push_back(node.ip);
    }
    auto key = s.load_balancer_ip->str();
    auto it = lb_routes_.find(key);
    if (it != lb_routes_.end() && it->second == targets) continue;
    Ipv4Net dst{*s.load_balancer_ip, 32};
    if (targets.empty()) {
      kernel_.delete_route(plan_.lb_netns, dst);
    } else {
      RouteSpec route{plan_.lb_netns, dst, targets.front(), "eth0", false};
      route.nexthops = targets;
      route.replace = true;
      kernel_.add_route(route);
    }
    lb_routes_[key] = targets;
    std::vector<std::string> names;
    for (const auto& t : targets) names.push_back(t.str());
    event(fmt::format("cloud load balancer: {} -> [{}]", key, fmt::join(names, ", ")));
  }
}

std::set<std::string> Controller::endpoint_nodes(const ServicePlan& s) const {
  std::set<std::string> nodes;
  if (auto it = endpoints_.find(s.key()); it != endpoints_.end())
    for (const auto& list : it->second)
      for (const auto& e : list) nodes.insert(e.node);
  return nodes;
}

void Controller::sync_bgp_announcements() {
  if (plan_.network.load_balancer_mode != "bgp") return;
  retry_announcements_ = false;
  for (const auto& s : plan_.services) {
    if (!s.load_balancer_ip || !s.external_local) continue;
    auto nodes = endpoint_nodes(s);
    auto key = s.load_balancer_ip->str();
    auto& announced = announced_[key];
    if (announced == nodes) continue;
    for (const auto& f : plan_.frr) {
      if (!f.announces_local) continue;
      bool want = nodes.count(f.name) > 0, has = announced.count(f.name) > 0;
      if (want == has) continue;
      try {
        run_vtysh(f, {"configure terminal", fmt::format("router bgp {}", f.asn),
                      "address-family ipv4 unicast",
                      fmt::format("{}network {}/32", want ? "" : "no ", key)});
        event(fmt::format("BGP: node {} {} {}/32 (service {}, externalTrafficPolicy Local)", f.name,
                          want ? "announces" : "withdraws", key, s.key()));
      } catch (const std::exception& e) {
        event(fmt::format("BGP: node {} could not {} {}/32: {}", f.name,
                          want ? "announce" : "withdraw", key, e.what()));
        // Kept as it is in FRR, so that a tick tries again.
        if (want)
          nodes.erase(f.name);
        else
          nodes.insert(f.name);
        retry_announcements_ = true;
      }
    }
    announced = std::move(nodes);
  }
}

namespace {

// What of `after` is not in `before`.
template <typename T>
std::vector<T> added(const std::vector<T>& before, const std::vector<T>& after) {
  std::vector<T> out;
  for (const auto& x : after)
    if (std::find(before.begin(), before.end(), x) == before.end()) out.push_back(x);
  return out;
}

template <typename T, typename Key>
const T* find_by(const std::vector<T>& list, const Key& key, auto&& key_of) {
  auto it = std::find_if(list.begin(), list.end(), [&](const T& x) { return key_of(x) == key; });
  return it == list.end() ? nullptr : &*it;
}

std::string network_key(const Network& n) {
  auto bgp = n.bgp_or_default();
  return fmt::format("{} {} {} {} {} {} {} {}-{} {}-{} {} {} {} {} {} {}", n.cni, n.kube_proxy_mode,
                     n.nftables_picker, n.pod_subnet.str(), n.service_subnet.str(),
                     n.node_subnet.str(), n.node_mask_size, n.node_port_min, n.node_port_max,
                     n.lb_pool_first.str(), n.lb_pool_last.str(), n.load_balancer_mode, n.mtu,
                     n.dns_domain, bgp.node_asn, bgp.peering, bgp.fabric_subnet.str());
}

// Why `after` is not `before` plus what apply can add; empty when it is.
std::vector<std::string> unsupported_changes(const Plan& before, const Plan& after) {
  std::vector<std::string> why;
  if (network_key(before.network) != network_key(after.network)) why.push_back("[network]");
  for (const auto& n : before.nodes) {
    auto* m = find_by(after.nodes, n.name, [](const NodePlan& x) { return x.name; });
    if (!m)
      why.push_back("node " + n.name + " is removed");
    else if (m->role != n.role || m->rack != n.rack || m->pod_cidr != n.pod_cidr)
      why.push_back("node " + n.name + " is changed");
  }
  for (const auto& h : before.hosts) {
    auto* m = find_by(after.hosts, h.name, [](const HostPlan& x) { return x.name; });
    if (!m || m->rack != h.rack) why.push_back("host " + h.name + " is removed or moved");
  }
  for (const auto& r : before.routers) {
    auto* m = find_by(after.routers, r.name, [](const RouterPlan& x) { return x.name; });
    if (!m || m->asn != r.asn || m->subnet != r.subnet || m->runs_frr != r.runs_frr)
      why.push_back("rack " + r.name + " is removed or changed");
  }
  for (const auto& p : before.pods) {
    auto* m = find_by(after.pods, p.key(), [](const PodPlan& x) { return x.key(); });
    if (!m) {
      why.push_back("pod " + p.key() + " is not in the file (also when `knetlab scale` added it)");
      continue;
    }
    bool same = m->node == p.node && m->ip == p.ip && m->labels == p.labels &&
                m->containers.size() == p.containers.size();
    for (size_t i = 0; same && i < p.containers.size(); ++i)
      same = m->containers[i].argv == p.containers[i].argv;
    if (!same) why.push_back("pod " + p.key() + " is changed");
  }
  if (before.services != after.services) why.push_back("[[services]]");
  // A safety net: whatever else moves a running object (an inserted rack
  // renumbers the spine's links, say).
  auto gone = [&](const auto& b, const auto& a, const char* what) {
    for (const auto& x : b)
      if (std::find(a.begin(), a.end(), x) == a.end()) {
        why.push_back(
            fmt::format("{} in {} would change (add racks, nodes and hosts after the "
                        "others)",
                        what, x.netns));
        return;
      }
  };
  gone(before.links, after.links, "a link");
  gone(before.addresses, after.addresses, "an address");
  gone(before.routes, after.routes, "a route");
  gone(before.neighbours, after.neighbours, "a neighbour entry");
  gone(before.fdb, after.fdb, "a forwarding entry");
  if (before.lb_netns != after.lb_netns) why.push_back("the cloud load balancer");
  return why;
}

}  // namespace

nlohmann::json Controller::apply(const std::string& file) {
  auto start = Clock::now();
  auto topology = parse_topology_file(file);
  check_buildable(topology);
  if (topology.name != plan_.lab)
    throw UserError(
        fmt::format("{} describes lab \"{}\", not \"{}\"", file, topology.name, plan_.lab));
  // What runs keeps its addresses, and its pods stay on their nodes.
  auto context = context_;
  for (const auto& n : plan_.nodes) {
    context.kept.machines["node/" + n.name] = n.ip;
    context.kept.pod_cidrs[n.name] = n.pod_cidr;
  }
  for (const auto& h : plan_.hosts) context.kept.machines["host/" + h.name] = h.ip;
  for (const auto& p : plan_.pods)
    if (!p.host_network) context.kept.pods[p.key()] = p.ip;
  for (auto& pod : topology.pods)
    if (auto* running = find_by(plan_.pods, pod.namespace_ + "/" + pod.name,
                                [](const PodPlan& p) { return p.key(); });
        running && std::any_of(topology.nodes.begin(), topology.nodes.end(),
                               [&](const Node& n) { return n.name == running->node; }))
      pod.node = running->node;
  auto next = make_plan(topology, context);
  auto why = unsupported_changes(plan_, next);
  if (!why.empty())
    throw UserError(fmt::format(
        "{}: apply adds nodes, hosts, racks and pods to a running lab; this file also changes "
        "{}. Run `knetlab destroy --lab {}` and deploy it to change those",
        file, fmt::join(why, "; "), plan_.lab));

  // The new objects, in the executor's order; running ones stay untouched.
  Plan fragment;
  fragment.lab = next.lab, fragment.file = next.file, fragment.network = next.network;
  fragment.run_dir = next.run_dir, fragment.bin_dir = next.bin_dir;
  fragment.namespaces = added(plan_.namespaces, next.namespaces);
  fragment.links = added(plan_.links, next.links);
  fragment.addresses = added(plan_.addresses, next.addresses);
  fragment.routes = added(plan_.routes, next.routes);
  fragment.neighbours = added(plan_.neighbours, next.neighbours);
  fragment.fdb = added(plan_.fdb, next.fdb);
  fragment.sysctls = added(plan_.sysctls, next.sysctls);
  fragment.files = added(plan_.files, next.files);  // frr.conf of new peers is rewritten
  fragment.daemons = added(plan_.daemons, next.daemons);
  for (const auto& f : next.frr)
    if (!find_by(plan_.frr, f.target, [](const FrrPlan& x) { return x.target; }))
      fragment.frr.push_back(f);
  for (const auto& p : next.pods)
    if (!find_by(plan_.pods, p.key(), [](const PodPlan& x) { return x.key(); }))
      fragment.pods.push_back(p);
  nlohmann::json result = {{"nodes", nlohmann::json::array()},
                           {"hosts", nlohmann::json::array()},
                           {"routers", nlohmann::json::array()},
                           {"pods", nlohmann::json::array()}};
  for (const auto& n : next.nodes)
    if (!find_by(plan_.nodes, n.name, [](const NodePlan& x) { return x.name; }))
      result["nodes"].push_back(n.name);
  for (const auto& h : next.hosts)
    if (!find_by(plan_.hosts, h.name, [](const HostPlan& x) { return x.name; }))
      result["hosts"].push_back(h.name);
  for (const auto& r : next.routers)
    if (!find_by(plan_.routers, r.name, [](const RouterPlan& x) { return x.name; }))
      result["routers"].push_back(r.name);
  for (const auto& p : fragment.pods) result["pods"].push_back(p.key());
  if (fragment.namespaces.empty() && fragment.links.empty() && fragment.files.empty() &&
      fragment.pods.empty())
    return result;

  auto started = Executor(kernel_, runtime_, journal_, {}).add_pods(fragment, mount_template_);
  std::set<std::string> touched;
  for (auto& [key, procs] : started) {
    adopt(key, procs);
    touched.insert(key);
  }
  // The executor journaled the new daemons' processes.
  std::set<std::string> started_daemons;
  for (const auto& d : fragment.daemons) started_daemons.insert("daemon:" + d.name);
  for (const auto& e : journal_.entries())
    if (started_daemons.count(e.name)) daemons_[e.name.substr(7)].process = e.process;
  // Running FRR instances learn their new peers and networks in place: no
  // session restarts.
  for (const auto& f : next.frr) {
    auto* running = find_by(plan_.frr, f.target, [](const FrrPlan& x) { return x.target; });
    if (!running) continue;
    for (const auto& [network, why] : added(running->networks, f.networks)) {
      run_vtysh(f, {"configure terminal", fmt::format("router bgp {}", f.asn),
                    "address-family ipv4 unicast", "network " + network.str()});
      event(fmt::format("BGP: {} announces {} ({})", f.target, network.str(), why));
    }
    for (const auto& peer : added(running->peers, f.peers)) {
      auto lines = bgp_peer_lines(f, peer);
      std::vector<std::string> commands = {"configure terminal",
                                           fmt::format("router bgp {}", f.asn)};
      commands.insert(commands.end(), lines.router.begin(), lines.router.end());
      commands.push_back("address-family ipv4 unicast");
      commands.insert(commands.end(), lines.address_family.begin(), lines.address_family.end());
      run_vtysh(f, commands);
      event(fmt::format("BGP: {} peers with {} ({}) from now on", f.target, peer.target,
                        peer.ip.str()));
    }
  }

  plan_ = std::move(next);
  index_services();
  topology_ = std::move(topology);
  note_allocations();
  // kube-proxy starts on the new nodes with every service's rules.
  std::vector<const ServicePlan*> all;
  for (const auto& s : plan_.services) all.push_back(&s);
  for (const auto& name : result["nodes"]) {
    const auto& n =
        *find_by(plan_.nodes, name.get<std::string>(), [](const NodePlan& x) { return x.name; });
    auto proxy = make_proxy(n);
    if (!all.empty()) {
      if (plan_.network.kube_proxy_mode == "nftables")
        proxy->nft = std::make_unique<NftSession>(n.netns);
      sync_node(*proxy, all, endpoints_, true);
    }
    nodes_.push_back(std::move(proxy));
  }
  if (!touched.empty()) sync(touched);
  if (!plan_.lb_netns.empty()) sync_load_balancer();
  // The record first: what was added is there, converged or not.
  publish();
  if (!plan_.frr.empty()) wait_for_bgp(Clock::now() + std::chrono::seconds(30));
  event(fmt::format("apply {}: added nodes [{}], hosts [{}], racks [{}], pods [{}] in {:.3f} s",
                    file, fmt::join(result["nodes"], ", "), fmt::join(result["hosts"], ", "),
                    fmt::join(result["routers"], ", "), fmt::join(result["pods"], ", "),
                    seconds_since(start)));
  result["seconds"] = seconds_since(start);
  return result;
}

void Controller::wait_for_bgp(Clock::time_point deadline) {
  // A bgpd that does not answer vtysh yet (it was started while the pods
  // were) failed its node's first announcement: it is tried again meanwhile.
  auto wanted = [this] {
    if (retry_announcements_) sync_bgp_announcements();
    ExtraRoutes routes;
    if (plan_.network.load_balancer_mode != "bgp") return routes;
    for (const auto& s : plan_.services) {
      if (!s.load_balancer_ip || !s.external_local) continue;
      auto nodes = endpoint_nodes(s);
      if (nodes.empty()) continue;
      auto why = fmt::format("LoadBalancer IP {} of service {}, announced by {}",
                             s.load_balancer_ip->str(), s.key(), fmt::join(nodes, ", "));
      for (const auto& f : plan_.frr)
        if (f.target.rfind("router/", 0) == 0)
          routes[f.target].emplace_back(Ipv4Net{*s.load_balancer_ip, 32}, why);
    }
    return routes;
  };
  knl::wait_for_bgp(plan_, wanted, deadline);
}

void Controller::restart_daemons(Clock::time_point now) {
  for (const auto& d : plan_.daemons) {
    auto& state = daemons_[d.name];
    if (!state.restart_at || *state.restart_at > now) continue;
    state.restart_at.reset();
    try {
      state.process = runtime_.start_daemon(d, mount_template_);
      journal_.record({JournalEntry::Kind::process, "daemon:" + d.name, state.process});
      event(fmt::format("{} restarted (restart {})", d.name, state.restarts));
    } catch (const std::exception& e) {
      event(fmt::format("{} could not restart: {}", d.name, e.what()));
    }
    // A restarted bgpd knows only frr.conf: its node's Local announcements
    // are made again.
    for (const auto& f : plan_.frr)
      if (d.name == "bgpd of " + f.target)
        for (auto& [ip, nodes] : announced_) nodes.erase(f.name);
  }
  sync_bgp_announcements();
}

void Controller::exited(int pid, int status) {
  for (auto& [name, state] : daemons_) {
    if (state.process.pid != pid) continue;
    int n = state.restarts++;
    auto delay = options_.restart_backoff * (1 << std::min(n, 5));
    state.restart_at = Clock::now() + std::min<Clock::duration>(delay, std::chrono::minutes(5));
    event(fmt::format("{} exited ({}); restarting it in {} s", name, status,
                      std::chrono::duration_cast<std::chrono::seconds>(delay).count()));
    return;
  }
  auto owner = pid_owner_.find(pid);
  if (owner == pid_owner_.end()) return;
  auto [key, container] = owner->second;
  pid_owner_.erase(owner);
  auto state = states_.find(key);
  if (state == states_.end() || state->second.terminating) return;
  event(fmt::format("pod {} {} exited ({})", key,
                    container.empty() ? "sandbox" : "container " + container, status));
  if (container.empty()) {
    // The sandbox is gone: the pod's namespaces went with it.
    for (const auto& [name, p] : pods_[key].containers) state->second.dead.insert(name);
    state->second.restart_at.clear();
  } else {
    state->second.dead.insert(container);
    int n = state->second.restarts[container]++;
    auto delay = options_.restart_backoff * (1 << std::min(n, 5));
    state->second.restart_at[container] =
        Clock::now() + std::min<Clock::duration>(delay, std::chrono::minutes(5));
  }
  exited_pods_.insert(key);
}

void Controller::settle() {
  if (exited_pods_.empty()) return;
  sync(std::exchange(exited_pods_, {}));
  publish();
}

void Controller::tick() {
  auto now = Clock::now();
  if (std::any_of(daemons_.begin(), daemons_.end(), [&](const auto& d) {
        return d.second.restart_at && *d.second.restart_at <= now;
      }))
    restart_daemons(now);
  else if (retry_announcements_)
    sync_bgp_announcements();
  std::set<std::string> changed;
  // Chains and sets the last syncs flushed go now, off the sync's path.
  for (auto& n : nodes_) {
    if (!n->nft || (n->stale_chains.empty() && n->stale_sets.empty())) continue;
    try {
      // In a context of its own: deleting by name makes libnftables fetch
      // every chain of the ruleset, and a sync's context would spend its
      // next run (16 ms at 10k services) freeing that copy.
      NftSession cleanup(n->netns);
      cleanup.run(nft_delete({n->stale_chains.begin(), n->stale_chains.end()},
                             {n->stale_sets.begin(), n->stale_sets.end()}));
    } catch (const std::exception& e) {
      event(fmt::format("kube-proxy: stale chains of {} stay: {}", n->node.name, e.what()));
    }
    n->stale_chains.clear(), n->stale_sets.clear();
  }
  for (const auto& pod : plan_.pods) {
    auto& state = states_[pod.key()];
    if (state.terminating) continue;
    for (const auto& c : pod.containers) {
      auto due = state.restart_at.find(c.name);
      if (due != state.restart_at.end() && due->second <= now) {
        state.restart_at.erase(due);
        try {
          auto p = runtime_.start_container(pods_[pod.key()].sandbox, c);
          journal_.record(
              {JournalEntry::Kind::process, "container:" + pod.key() + "/" + c.name, p});
          pods_[pod.key()].containers[c.name] = p;
          pid_owner_[p.pid] = {pod.key(), c.name};
          state.dead.erase(c.name);
          if (c.readiness) state.unready.insert(c.name);
          event(fmt::format("pod {} container {} restarted (restart {})", pod.key(), c.name,
                            state.restarts[c.name]));
          changed.insert(pod.key());
        } catch (const std::exception& e) {
          event(fmt::format("pod {} container {} could not restart: {}", pod.key(), c.name,
                            e.what()));
        }
      }
      if (!c.readiness || state.dead.count(c.name)) continue;
      bool ok = runtime_.probe_readiness(pod, c);
      if (ok == !state.unready.count(c.name)) continue;
      if (ok)
        state.unready.erase(c.name);
      else
        state.unready.insert(c.name);
      event(fmt::format("pod {} container {} readiness probe {}", pod.key(), c.name,
                        ok ? "succeeded: ready" : "failed: not ready"));
      changed.insert(pod.key());
    }
  }
  if (changed.empty()) return;
  sync(changed);
  publish();
}

const Deployment& Controller::find_deployment(const std::string& name) const {
  const Deployment* found = nullptr;
  for (const auto& d : topology_.deployments)
    if (matches(name, d.namespace_, d.name)) {
      if (found)
        throw UserError(
            fmt::format("deployment \"{}\" exists in several namespaces; write "
                        "deployment/NAMESPACE/NAME",
                        name));
      found = &d;
    }
  if (!found) {
    std::vector<std::string> names;
    for (const auto& d : topology_.deployments) names.push_back(d.namespace_ + "/" + d.name);
    throw UserError(
        fmt::format("lab \"{}\" has no deployment \"{}\" (deployments: {})", plan_.lab, name,
                    names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
  }
  return *found;
}

Ipv4 Controller::allocate_ip(const NodePlan& node) {
  std::set<Ipv4> used;
  for (const auto& p : plan_.pods)
    if (p.node == node.name && !p.host_network) used.insert(p.ip);
  // host-local IPAM: the address after the last one handed out, wrapping.
  const uint64_t first = 2, count = node.pod_cidr.size() - 3;
  uint64_t start = last_ip_.count(node.name)
                       ? last_ip_[node.name].value - node.pod_cidr.network.value + 1
                       : first;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t offset = first + (start - first + i) % count;
    auto ip = node.pod_cidr.at(offset);
    if (!used.count(ip)) {
      last_ip_[node.name] = ip;
      return ip;
    }
  }
  throw SystemError(
      fmt::format("node {} has no free address left in {}", node.name, node.pod_cidr.str()),
      ENOSPC);
}

std::string Controller::add_replica(const Deployment& d) {
  auto allowed = d.nodes;
  if (allowed.empty())
    for (const auto& n : topology_.nodes) allowed.push_back(n.name);
  std::map<std::string, int> load;
  for (const auto& p : plan_.pods)
    if (p.deployment == d.name && p.namespace_ == d.namespace_) ++load[p.node];
  std::string node = allowed.front();
  for (const auto& n : allowed)
    if (load[n] < load[node]) node = n;
  Pod pod;
  pod.name = fmt::format("{}-{}", d.name, next_index_[d.namespace_ + "/" + d.name]++);
  pod.namespace_ = d.namespace_, pod.node = node, pod.spec = d.spec, pod.deployment = d.name;
  pod.where = d.where;
  const auto& node_plan = *std::find_if(plan_.nodes.begin(), plan_.nodes.end(),
                                        [&](auto& n) { return n.name == node; });
  auto ip = d.spec.host_network ? node_plan.ip : allocate_ip(node_plan);
  auto fragment = plan_added_pod(topology_, context_, plan_, pod, ip);
  Executor executor(kernel_, runtime_, journal_, {});
  auto started = executor.add_pods(fragment, mount_template_);
  for (auto& [key, procs] : started) adopt(key, procs);
  for (auto& p : fragment.pods) plan_.pods.push_back(std::move(p));
  topology_.pods.push_back(pod);
  event(fmt::format("pod {}/{} created on node {} with IP {}", pod.namespace_, pod.name, node,
                    ip.str()));
  return pod.namespace_ + "/" + pod.name;
}

void Controller::delete_pod(const std::string& key) {
  auto it = std::find_if(plan_.pods.begin(), plan_.pods.end(),
                         [&](const PodPlan& p) { return p.key() == key; });
  // Out of the endpoints first, as Kubernetes does for a terminating pod.
  states_[key].terminating = true;
  sync({key});
  Executor(kernel_, runtime_, journal_, {}).remove_pod(*it, pods_[key]);
  for (auto o = pid_owner_.begin(); o != pid_owner_.end();)
    o = o->second.first == key ? pid_owner_.erase(o) : std::next(o);
  pods_.erase(key);
  states_.erase(key);
  plan_.pods.erase(it);
  std::erase_if(topology_.pods, [&](const Pod& p) { return p.namespace_ + "/" + p.name == key; });
  event(fmt::format("pod {} deleted", key));
}

nlohmann::json Controller::scale(const std::string& name, int replicas) {
  if (replicas < 0) throw UserError("--replicas must be 0 or more");
  const auto& d = find_deployment(name);
  std::vector<std::pair<int, std::string>> current;
  for (const auto& p : plan_.pods)
    if (p.deployment == d.name && p.namespace_ == d.namespace_)
      current.push_back({pod_index(p.name, d.name), p.key()});
  std::sort(current.begin(), current.end());
  nlohmann::json added = nlohmann::json::array(), removed = nlohmann::json::array();
  // The newest pods go first, as a ReplicaSet scaling down picks them.
  while (static_cast<int>(current.size()) > replicas) {
    delete_pod(current.back().second);
    removed.push_back(current.back().second);
    current.pop_back();
  }
  std::set<std::string> new_pods;
  for (int n = static_cast<int>(current.size()); n < replicas; ++n) new_pods.insert(add_replica(d));
  for (const auto& pod : new_pods) added.push_back(pod);
  if (!new_pods.empty()) sync(new_pods);
  publish();
  return {{"deployment", d.namespace_ + "/" + d.name},
          {"replicas", replicas},
          {"added", added},
          {"removed", removed},
          {"syncSeconds", last_sync_seconds_}};
}

nlohmann::json Controller::remove(const std::string& name) {
  std::vector<const PodPlan*> found;
  for (const auto& p : plan_.pods)
    if (matches(name, p.namespace_, p.name)) found.push_back(&p);
  if (found.empty()) throw UserError(fmt::format("lab \"{}\" has no pod \"{}\"", plan_.lab, name));
  if (found.size() > 1)
    throw UserError(
        fmt::format("pod \"{}\" exists in several namespaces; write pod/NAMESPACE/NAME", name));
  auto key = found.front()->key();
  auto owner = found.front()->deployment, ns = found.front()->namespace_;
  delete_pod(key);
  nlohmann::json out = {{"deleted", key}};
  if (!owner.empty()) {
    auto replacement = add_replica(find_deployment(ns + "/" + owner));
    out["replacement"] = replacement;
    sync({replacement});
  }
  publish();
  out["syncSeconds"] = last_sync_seconds_;
  return out;
}

nlohmann::json Controller::request(const nlohmann::json& r) {
  auto op = r.value("op", "");
  if (op == "scale")
    return scale(r.at("deployment").get<std::string>(), r.at("replicas").get<int>());
  if (op == "delete") return remove(r.at("pod").get<std::string>());
  if (op == "apply") return apply(r.at("file").get<std::string>());
  if (op == "sync") return {{"syncSeconds", last_sync_seconds_}, {"services", last_sync_services_}};
  throw UserError(fmt::format("unknown request \"{}\"", op));
}

}  // namespace knl
