#include "knetlab/topology/parse.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <sys/stat.h>

#include "knetlab/util/error.h"
#include "parser.h"

namespace knl {

bool is_dns_label(const std::string& name, size_t max_length) {
  if (name.empty() || name.size() > max_length) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return name.front() != '-' && name.back() != '-';
}

bool is_iana_svc_name(const std::string& name) {
  return is_dns_label(name, 15) && name.find("--") == std::string::npos &&
         std::any_of(name.begin(), name.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

bool is_domain_name(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (size_t start = 0;;) {
    auto dot = name.find('.', start);
    if (!is_dns_label(name.substr(start, dot - start), 63)) return false;
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

namespace {

bool is_label_name(std::string_view name) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (name.empty() || name.size() > 63 || !alnum(name.front()) || !alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

}  // namespace

bool is_label_key(const std::string& key) {
  auto slash = key.find('/');
  if (slash == std::string::npos) return is_label_name(key);
  return is_domain_name(key.substr(0, slash)) &&
         is_label_name(std::string_view(key).substr(slash + 1));
}

bool is_label_value(const std::string& value) {
  return value.empty() || is_label_name(value);
}

namespace parsing {

std::string name_of(const TableReader& t, size_t max_length) {
  auto name = t.required_string("name");
  if (!is_dns_label(name, max_length))
    t.fail("name",
           fmt::format("name \"{}\"{} must be 1..{} characters of a-z, 0-9 and '-', "
                       "starting and ending with a letter or digit (it becomes part of "
                       "kernel and file names)",
                       excerpt(name), t.context().empty() ? " of the lab" : " of " + t.context(),
                       max_length));
  return name;
}

void UniqueNames::add(const TableReader& t, const std::string& name) {
  auto [it, fresh] = seen_.emplace(name, Where{});
  if (!fresh)
    t.fail("name",
           fmt::format("duplicate {} \"{}\" (first defined at {})", what_, name, it->second.str()));
  it->second = where_of(*t.find("name"), "name");
}

std::vector<std::string> UniqueNames::names() const {
  std::vector<std::string> out;
  for (const auto& [n, w] : seen_) out.push_back(n);
  return out;
}

void require_known(const TableReader& t, const std::string& key, const std::string& value,
                   const UniqueNames& known, const std::string& what) {
  if (known.contains(value)) return;
  auto guess = nearest(value, known.names());
  t.fail(key, fmt::format("unknown {} \"{}\"{}", what, excerpt(value),
                          guess.empty() ? fmt::format("; define it under [[{}s]]", what)
                                        : fmt::format("; did you mean \"{}\"?", guess)));
}

namespace {

std::pair<int64_t, int64_t> parse_range(const TableReader& t, const std::string& key,
                                        const std::string& fallback) {
  auto text = t.string(key, fallback);
  auto dash = text.find('-');
  int64_t lo = -1, hi = -1;
  if (dash != std::string::npos) {
    auto a = std::from_chars(text.data(), text.data() + dash, lo);
    auto b = std::from_chars(text.data() + dash + 1, text.data() + text.size(), hi);
    if (a.ptr != text.data() + dash || b.ptr != text.data() + text.size()) lo = hi = -1;
  }
  if (lo < 1 || hi > 65535 || lo > hi)
    t.fail(key, fmt::format("\"{}\" = \"{}\" is not a port range; write \"FIRST-LAST\" such as "
                            "\"30000-32767\"",
                            key, excerpt(text)));
  return {lo, hi};
}

}  // namespace

Topology Parser::run() {
  topo_.file = file_;
  root_.allow_only({"name", "network", "racks", "nodes", "hosts", "namespaces", "pods",
                    "deployments", "services", "ingresses", "gateways", "httpRoutes",
                    "networkPolicies"});
  if (!root_.has("name"))
    fail_at(Where{file_, 1, 1}, "",
            "the lab needs a name: add  name = \"demo\"  at the top of the file");
  topo_.name = name_of(root_, kLabNameMax);
  network();
  racks();
  nodes();
  hosts();
  namespaces();
  workloads();
  services();
  ingresses();
  gateways();
  http_routes();
  network_policies();
  capacity();
  return std::move(topo_);
}

void Parser::network() {
  auto& n = topo_.network;
  auto t = root_.table("network");
  if (!t) {
    n.where_cni = n.where_ip_family = n.where_load_balancer_mode = pool_where_ = root_.where();
    return;
  }
  t->allow_only({"cni", "kubeProxyMode", "nftablesPicker", "podSubnet", "serviceSubnet",
                 "nodeSubnet", "nodeMaskSize", "nodePortRange", "loadBalancerPool",
                 "loadBalancerMode", "mtu", "dnsDomain", "ipFamily", "bgp", "cniConfig"});
  n.cni = t->choice("cni", Cni::vxlan);
  n.where_cni = t->has("cni") ? where_of(*t->find("cni"), "cni") : t->where();
  n.kube_proxy_mode = t->choice("kubeProxyMode", ProxyMode::nftables);
  n.nftables_picker = t->choice("nftablesPicker", NftPicker::vmap);
  n.pod_subnet = t->cidr("podSubnet", "10.244.0.0/16");
  n.service_subnet = t->cidr("serviceSubnet", "10.96.0.0/16");
  n.node_subnet = t->cidr("nodeSubnet", "172.18.0.0/24");
  if (n.pod_subnet.overlaps(n.service_subnet))
    t->fail("serviceSubnet", fmt::format("serviceSubnet {} overlaps podSubnet {}; pick disjoint "
                                         "ranges",
                                         n.service_subnet.str(), n.pod_subnet.str()));
  for (const auto& [other, name] :
       {std::pair{n.pod_subnet, "podSubnet"}, std::pair{n.service_subnet, "serviceSubnet"}})
    if (n.node_subnet.overlaps(other))
      t->fail("nodeSubnet", fmt::format("nodeSubnet {} overlaps {} {}; pick disjoint ranges",
                                        n.node_subnet.str(), name, other.str()));
  if (n.node_subnet.prefix > 29)
    t->fail("nodeSubnet", "nodeSubnet is too small; use a /29 or larger network");
  if (n.service_subnet.prefix > 28)
    t->fail("serviceSubnet", "serviceSubnet is too small; use a /28 or larger network");
  n.node_mask_size = static_cast<int>(t->integer("nodeMaskSize", 24, n.pod_subnet.prefix, 29));
  if (n.nftables_picker == NftPicker::map && n.node_mask_size < kMapPickerMaskSize)
    t->fail("nftablesPicker",
            fmt::format("nftablesPicker = \"map\" lists every pod address of a node for "
                        "hairpin connections; it needs nodeMaskSize {} or more (it is {})",
                        kMapPickerMaskSize, n.node_mask_size));
  auto [lo, hi] = parse_range(*t, "nodePortRange", "30000-32767");
  n.node_port_min = static_cast<int>(lo), n.node_port_max = static_cast<int>(hi);
  n.load_balancer_mode = t->choice("loadBalancerMode", LoadBalancerMode::cloud);
  n.where_load_balancer_mode = t->has("loadBalancerMode")
                                   ? where_of(*t->find("loadBalancerMode"), "loadBalancerMode")
                                   : t->where();
  load_balancer_pool(*t);
  n.mtu = static_cast<int>(t->integer("mtu", 1500, 1280, 9000));
  n.dns_domain = t->string("dnsDomain", "cluster.local");
  if (!is_domain_name(n.dns_domain))
    t->fail("dnsDomain",
            fmt::format("dnsDomain \"{}\" is not a domain name such as \"cluster.local\"",
                        excerpt(n.dns_domain)));
  n.ip_family = t->choice("ipFamily", IpFamily::ipv4);
  n.where_ip_family = t->has("ipFamily") ? where_of(*t->find("ipFamily"), "ipFamily") : t->where();
  if (auto b = t->table("bgp")) {
    b->allow_only({"nodeASN", "peering", "fabricSubnet"});
    n.bgp =
        BgpConfig{static_cast<uint32_t>(b->integer("nodeASN", 64512, 1, 4294967295)),
                  b->choice("peering", BgpPeering::mesh), b->cidr("fabricSubnet", kDefaultFabric)};
    n.where_bgp = b->where();
    if (n.bgp->node_asn == kSpineAsn)
      b->fail("nodeASN", fmt::format("nodeASN {} is the ASN of the spine and LAN routers; pick "
                                     "another private ASN such as 64512",
                                     kSpineAsn));
  }
  if (auto c = t->table("cniConfig")) {
    n.cni_config = cni_config(*c);
    n.where_cni_config = c->where();
    if (n.cni != Cni::external)
      c->fail("conflist", fmt::format("[network.cniConfig] is for cni = \"external\"; this lab's "
                                      "cni is \"{}\"",
                                      enum_name(n.cni)));
  } else if (n.cni == Cni::external) {
    t->fail("cni", "cni = \"external\" needs a [network.cniConfig] table with \"conflist\"");
  }
}

CniConfig Parser::cni_config(const TableReader& c) {
  c.allow_only({"conflist", "binDir", "routing", "timeout"});
  CniConfig out;
  out.conflist = c.required_string("conflist");
  out.where_conflist = where_of(*c.find("conflist"), "conflist");
  out.where_bin_dir = c.where();
  if (const auto* dirs = c.find("binDir")) {
    out.where_bin_dir = where_of(*dirs, "binDir");
    out.bin_dirs =
        dirs->is_string() ? std::vector<std::string>{c.string("binDir", "")} : c.strings("binDir");
    if (out.bin_dirs.empty()) c.fail("binDir", "binDir names at least one folder");
  }
  out.routing = c.choice("routing", CniRouting::host_gw);
  out.timeout_seconds = static_cast<int>(c.integer("timeout", 30, 1, 3600));
  // The conflist is read with the topology: a missing file is the
  // topology's error, at its line.
  auto path = std::filesystem::path(out.conflist);
  if (path.is_relative()) path = std::filesystem::path(file_).parent_path() / path;
  std::ifstream in(path);
  if (!in)
    c.fail("conflist",
           fmt::format("cannot read the conflist {}: {}", path.string(), std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  out.conflist_text = text.str();
  if (out.conflist_text.size() > 1 << 20)
    c.fail("conflist", fmt::format("the conflist {} is over 1 MiB", path.string()));
  out.conflist = path.string();
  return out;
}

void Parser::load_balancer_pool(const TableReader& t) {
  auto& n = topo_.network;
  // MetalLB's BGP mode announces addresses that no LAN holds: on the LAN
  // the hosts would ask ARP for them instead of routing.
  auto text = t.string("loadBalancerPool", n.load_balancer_mode == LoadBalancerMode::bgp
                                               ? "172.18.255.200-172.18.255.250"
                                               : "172.18.0.200-172.18.0.250");
  auto dash = text.find('-');
  std::optional<Ipv4> first, last;
  if (dash != std::string::npos)
    first = Ipv4::parse(text.substr(0, dash)), last = Ipv4::parse(text.substr(dash + 1));
  if (!first || !last || *last < *first)
    t.fail("loadBalancerPool",
           fmt::format("\"loadBalancerPool\" = \"{}\" is not an address range; write "
                       "\"FIRST-LAST\" such as \"172.18.0.200-172.18.0.250\"",
                       excerpt(text)));
  n.lb_pool_first = *first, n.lb_pool_last = *last;
  pool_where_ = t.has("loadBalancerPool")
                    ? where_of(*t.find("loadBalancerPool"), "loadBalancerPool")
                    : t.where();
}

void Parser::racks() {
  UniqueNames names("rack");
  for (const auto& t : root_.tables("racks")) {
    t.allow_only({"name", "subnet", "asn"});
    Rack r{name_of(t, 20), t.cidr("subnet", ""), 0, t.where()};
    if (!t.has("subnet")) t.fail("subnet", "[[racks]] needs \"subnet\", e.g. \"172.18.1.0/24\"");
    r.asn = static_cast<uint32_t>(t.integer("asn", 0, 1, 4294967295));
    if (!t.has("asn")) t.fail("asn", "[[racks]] needs \"asn\", e.g. 65001");
    if (r.asn == kSpineAsn || r.asn == topo_.network.bgp_or_default().node_asn)
      t.fail("asn", fmt::format("asn {} is the {}'s; each rack needs its own ASN, e.g. 65001",
                                r.asn, r.asn == kSpineAsn ? "spine" : "nodes"));
    for (const auto& other : topo_.racks)
      if (other.asn == r.asn)
        t.fail("asn", fmt::format("asn {} is rack \"{}\"'s too: with one ASN the racks would "
                                  "drop each other's routes (AS-path loop); give each its own",
                                  r.asn, other.name));
    if (r.name == "spine")
      t.fail("name", "\"spine\" is the name of the spine router; rename the rack");
    names.add(t, r.name);
    for (const auto& other : topo_.racks)
      if (other.subnet.overlaps(r.subnet))
        t.fail("subnet", fmt::format("subnet {} overlaps rack \"{}\" ({})", r.subnet.str(),
                                     other.name, other.subnet.str()));
    for (const auto& [net, key] : {std::pair{topo_.network.pod_subnet, "podSubnet"},
                                   std::pair{topo_.network.service_subnet, "serviceSubnet"}})
      if (r.subnet.overlaps(net))
        t.fail("subnet", fmt::format("subnet {} overlaps {} {}", r.subnet.str(), key, net.str()));
    topo_.racks.push_back(r);
  }
  rack_names_ = names;
}

std::string Parser::rack_of(const TableReader& t) {
  auto rack = t.string("rack", "");
  if (topo_.racks.empty() && !rack.empty())
    t.fail("rack", "\"rack\" needs [[racks]]; define the rack or remove the key");
  if (!topo_.racks.empty()) {
    if (rack.empty())
      t.fail("name", fmt::format("with [[racks]], every node and host needs \"rack\" (one of {})",
                                 fmt::join(rack_names_.names(), ", ")));
    require_known(t, "rack", rack, rack_names_, "rack");
  }
  return rack;
}

void Parser::nodes() {
  auto list = root_.tables("nodes");
  if (list.empty())
    fail_at(Where{file_, 1, 1}, "", "the lab needs at least one node: add a [[nodes]] table");
  for (const auto& t : list) {
    t.allow_only({"name", "role", "rack", "podCIDR"});
    Node n{name_of(t), t.choice("role", NodeRole::worker), rack_of(t), std::nullopt, t.where()};
    machine_names_.add(t, n.name);
    node_names_.add(t, n.name);
    if (t.has("podCIDR")) {
      auto cidr = t.cidr("podCIDR", "");
      if (!topo_.network.pod_subnet.contains(cidr.network) ||
          cidr.prefix < topo_.network.pod_subnet.prefix)
        t.fail("podCIDR", fmt::format("podCIDR {} is not inside podSubnet {}", cidr.str(),
                                      topo_.network.pod_subnet.str()));
      if (cidr.prefix > 29) t.fail("podCIDR", "podCIDR is too small; use a /29 or larger");
      for (const auto& other : topo_.nodes)
        if (other.pod_cidr && other.pod_cidr->overlaps(cidr))
          t.fail("podCIDR", fmt::format("podCIDR {} overlaps node \"{}\" ({})", cidr.str(),
                                        other.name, other.pod_cidr->str()));
      n.pod_cidr = cidr;
    }
    topo_.nodes.push_back(n);
  }
  if (topo_.network.cni == Cni::bridge && topo_.nodes.size() > 1)
    list[1].fail("name",
                 "cni = \"bridge\" is for single-node labs; use cni = \"vxlan\" for "
                 "several nodes");
}

void Parser::hosts() {
  std::map<std::string, std::string> owners;  // a DNS name -> the host that has it
  for (const auto& t : root_.tables("hosts")) {
    t.allow_only({"name", "rack", "dnsNames"});
    Host h{name_of(t), rack_of(t), t.strings("dnsNames"), t.where()};
    machine_names_.add(t, h.name);
    for (const auto& name : h.dns_names) {
      if (!is_domain_name(name))
        t.fail("dnsNames", fmt::format("\"{}\" is not a domain name such as \"db.example.com\" "
                                       "(lower-case labels of a-z, 0-9 and '-', joined by dots)",
                                       excerpt(name)));
      const auto& zone = topo_.network.dns_domain;
      if (name == zone ||
          (name.size() > zone.size() &&
           name.compare(name.size() - zone.size() - 1, std::string::npos, "." + zone) == 0))
        t.fail("dnsNames", fmt::format("\"{}\" is in the cluster's domain {}; a host's names are "
                                       "the outside world's",
                                       name, zone));
      auto [it, fresh] = owners.emplace(name, h.name);
      if (!fresh)
        t.fail("dnsNames", fmt::format("\"{}\" is host \"{}\"'s name already", name, it->second));
    }
    topo_.hosts.push_back(h);
  }
}

void Parser::namespaces() {
  topo_.namespaces.push_back({"default", {}, root_.where()});
  namespace_names_.add(root_, "default");
  for (const auto& t : root_.tables("namespaces")) {
    t.allow_only({"name", "labels"});
    Namespace ns{name_of(t), t.labels("labels"), t.where()};
    if (ns.name == "default") {
      topo_.namespaces.front().labels = ns.labels;
      continue;
    }
    namespace_names_.add(t, ns.name);
    topo_.namespaces.push_back(ns);
  }
}

std::string Parser::namespace_of(const TableReader& t) {
  auto ns = t.string("namespace", "default");
  require_known(t, "namespace", ns, namespace_names_, "namespace");
  return ns;
}

// Address space checks that need every node and host.
void Parser::capacity() {
  const auto& net = topo_.network;
  auto machines = topo_.nodes.size() + topo_.hosts.size();
  if (topo_.racks.empty() && machines + 2 >= net.node_subnet.size() - 1)
    fail_at(topo_.nodes.back().where, "",
            fmt::format("nodeSubnet {} has room for {} nodes and hosts, the file has {}; use a "
                        "larger nodeSubnet",
                        net.node_subnet.str(), net.node_subnet.size() - 3, machines));
  routing();
  if (topo_.racks.empty() && net.load_balancer_mode == LoadBalancerMode::cloud) {
    Ipv4 last_machine = net.node_subnet.at(1 + machines);
    if (!net.node_subnet.contains(net.lb_pool_first) ||
        !net.node_subnet.contains(net.lb_pool_last) || net.lb_pool_first <= last_machine)
      fail_at(pool_where_, "",
              fmt::format("loadBalancerPool must lie inside nodeSubnet {} above the nodes' and "
                          "hosts' addresses (the last is {})",
                          net.node_subnet.str(), last_machine.str()));
  }
  if (net.cni == Cni::external && net.cni_config &&
      net.cni_config->routing == CniRouting::host_gw && !topo_.racks.empty())
    fail_at(net.where_cni_config, "",
            "routing = \"host-gw\" needs every node on one LAN (a route's next hop is the other "
            "node); with [[racks]] use routing = \"vxlan\"");
  for (const auto& rack : topo_.racks) {
    size_t in_rack = 0;
    for (const auto& n : topo_.nodes) in_rack += n.rack == rack.name;
    for (const auto& h : topo_.hosts) in_rack += h.rack == rack.name;
    if (in_rack + 2 >= rack.subnet.size() - 1)
      fail_at(rack.where, "",
              fmt::format("rack \"{}\" subnet {} is too small for its {} nodes "
                          "and hosts",
                          rack.name, rack.subnet.str(), in_rack));
  }
  uint64_t cidrs = uint64_t{1} << (net.node_mask_size - net.pod_subnet.prefix);
  if (topo_.nodes.size() > cidrs)
    fail_at(topo_.nodes[cidrs].where, "",
            fmt::format("podSubnet {} holds {} node pod CIDRs of /{}, the file has {} nodes; use "
                        "a larger podSubnet or a larger nodeMaskSize",
                        net.pod_subnet.str(), cidrs, net.node_mask_size, topo_.nodes.size()));
}

// The routed parts: racks, the spine's fabric and BGP-announced addresses.
void Parser::routing() {
  const auto& net = topo_.network;
  auto bgp = net.bgp_or_default();
  if (net.cni == Cni::bgp && !topo_.racks.empty() && bgp.peering == BgpPeering::mesh)
    fail_at(net.bgp ? net.where_bgp : net.where_cni, "",
            "cni = \"bgp\" with peering = \"mesh\" needs one LAN: across racks the fabric "
            "would not know the pod routes (Calico encapsulates there). With [[racks]] add "
            "[network.bgp] peering = \"tor\", so the racks' routers carry the pod routes");
  std::vector<std::pair<Ipv4Net, std::string>> taken = {{net.pod_subnet, "podSubnet"},
                                                        {net.service_subnet, "serviceSubnet"}};
  if (topo_.racks.empty()) taken.emplace_back(net.node_subnet, "nodeSubnet");
  for (const auto& r : topo_.racks) taken.emplace_back(r.subnet, "rack \"" + r.name + "\"");
  if (!topo_.racks.empty()) {
    auto where = net.bgp ? net.where_bgp : topo_.racks.front().where;
    for (const auto& [subnet, what] : taken)
      if (subnet.overlaps(bgp.fabric_subnet))
        fail_at(where, "",
                fmt::format("the spine's links are numbered from fabricSubnet {}, which "
                            "overlaps {} {}; set [network.bgp] fabricSubnet to a free range",
                            bgp.fabric_subnet.str(), what, subnet.str()));
    if (2 * topo_.racks.size() > bgp.fabric_subnet.size())
      fail_at(
          where, "",
          fmt::format("fabricSubnet {} has room for {} racks' links, the file has {} racks",
                      bgp.fabric_subnet.str(), bgp.fabric_subnet.size() / 2, topo_.racks.size()));
  }
  if (net.load_balancer_mode == LoadBalancerMode::bgp)
    for (const auto& [subnet, what] : taken)
      if (subnet.contains(net.lb_pool_first) || subnet.contains(net.lb_pool_last) ||
          (net.lb_pool_first < subnet.network && subnet.network < net.lb_pool_last))
        fail_at(pool_where_, "",
                fmt::format("with loadBalancerMode = \"bgp\" the loadBalancerPool must lie "
                            "outside {} {}: there the hosts would ask for the addresses by ARP "
                            "instead of routing them; use e.g. \"172.18.255.200-172.18.255.250\"",
                            what, subnet.str()));
}

}  // namespace parsing

namespace {

// Refuses what would make toml11 recurse past the stack (it parses nested
// arrays and inline tables recursively) or take seconds: text longer than
// kMaxTopologyBytes, or brackets and braces nested deeper than
// kMaxTopologyNesting outside strings and comments, named at their line.
void check_size_and_nesting(const std::string& text, const std::string& file) {
  if (text.size() > kMaxTopologyBytes)
    throw UserError(
        fmt::format("{}: larger than a topology file may be ({} MiB); is it the "
                    "right file?",
                    file, kMaxTopologyBytes >> 20));
  size_t depth = 0, line = 1, line_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ++line, line_start = i + 1;
    } else if (c == '#') {
      i = std::min(text.find('\n', i), text.size()) - 1;
    } else if (c == '"' || c == '\'') {
      // A string, basic (with escapes) or literal, on one line or (tripled) many.
      bool multi = text.compare(i, 3, std::string(3, c)) == 0;
      size_t j = i + (multi ? 3 : 1);
      for (; j < text.size(); ++j) {
        if (c == '"' && text[j] == '\\') {
          ++j;
        } else if (text[j] == '\n') {
          if (!multi) break;  // toml11 reports the unterminated string
          ++line, line_start = j + 1;
        } else if (text[j] == c && (!multi || text.compare(j, 3, std::string(3, c)) == 0)) {
          j += multi ? 2 : 0;
          break;
        }
      }
      i = std::min(j, text.size());
      if (i < text.size() && text[i] == '\n') --i;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxTopologyNesting)
        fail_at(Where{file, static_cast<unsigned>(line), static_cast<unsigned>(i - line_start + 1)},
                text.substr(line_start, std::min<size_t>(text.find('\n', line_start), text.size()) -
                                            line_start),
                fmt::format("arrays and tables nested more than {} deep: no topology needs that",
                            kMaxTopologyNesting));
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

// toml11's first line of an error (e.g. "toml::parse_key: an invalid key
// appeared.") in the user's words; an unknown one without the function's name.
std::string toml_message(std::string raw) {
  auto quoted = [&] {
    auto open = raw.find("(\""), close = raw.find("\")", open == std::string::npos ? 0 : open);
    return open == std::string::npos || close == std::string::npos
               ? std::string()
               : excerpt(raw.substr(open + 2, close - open - 2));
  };
  static const std::vector<std::pair<const char*, const char*>> words = {
      {"empty key is not allowed", "a key is missing before '='"},
      {"invalid format for key",
       "expected a key (letters, digits, '-' and '_', or a quoted "
       "string) and '=', or a [table] header"},
      {"invalid key",
       "expected a key (letters, digits, '-' and '_', or a quoted string) and "
       "'=', or a [table] header"},
      {"newline required after", "nothing but a comment may follow a table header on its line"},
      {"no `]`", "a [table] header closes with ']'"},
      {"no `]]`", "an [[array of tables]] header closes with ']]'"},
      {"missing curly brace",
       "an inline table closes with '}' on the line it opens (a [table] "
       "may span lines)"},
      {"trailing comma is not allowed", "an inline table may not end with ','"},
      {"missing table separator", "an inline table's entries are separated by ','"},
      {"missing array separator", "an array's values are separated by ',' and it closes with ']'"},
      {"missing value after", "a value is missing after '='"},
      {"not a valid string",
       "a string closes with '\"' on its line and knows only the escapes "
       "\\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX"},
      {"invalid line format", "expected key = value or a [table] header on this line"},
      {"parse_date", "not a date, nor any value a topology takes"},
      {"NaN value found", "nan is not a number a topology takes"},
      {"inf value found", "inf is not a number a topology takes"},
      {"integer", "not a number TOML knows (digits, with '_' only between two)"},
      {"input is empty", "a value is missing"},
  };
  if (raw.find("insert_value: value") != std::string::npos)
    return fmt::format("key \"{}\" is given twice", quoted());
  if (raw.find("insert_value: table") != std::string::npos ||
      raw.find("insert_value: array of table") != std::string::npos)
    return fmt::format("\"{}\" is defined twice (as a table, an array of tables or a key)",
                       quoted());
  for (const auto& [part, said] : words)
    if (raw.find(part) != std::string::npos) return said;
  if (raw.rfind("toml::", 0) == 0) raw = raw.substr(std::min(raw.find(": "), raw.size() - 2) + 2);
  return raw.empty() ? "this line is not TOML" : excerpt(raw);
}

}  // namespace

Topology parse_topology(const std::string& text, const std::string& file) {
  check_size_and_nesting(text, file);
  TomlValue root;
  try {
    std::istringstream in(text);
    root = toml::parse<toml::discard_comments, std::map, std::vector>(in, file);
  } catch (const toml::exception& e) {
    auto loc = e.location();
    std::string what = e.what();
    // toml11 prefixes "[error] " and draws its own picture; keep its first line.
    auto start = what.find("] ");
    auto line = what.substr(start == std::string::npos ? 0 : start + 2);
    line = line.substr(0, line.find('\n'));
    fail_at(Where{file, loc.line(), loc.column()}, loc.line_str(),
            fmt::format("not valid TOML: {}", toml_message(line)));
  }
  return parsing::Parser(root, file).run();
}

Topology parse_topology_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw UserError(
        fmt::format("{}: cannot read the topology file: {}", path, std::strerror(errno)));
  if (S_ISDIR(st.st_mode))
    throw UserError(fmt::format("{}: is a directory, not a topology file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw UserError(
        fmt::format("{}: cannot read the topology file: {}", path, std::strerror(errno)));
  // At most one byte more than a topology may hold: a pipe or a huge file is
  // not read to its end to be refused.
  std::string text;
  char chunk[65536];
  while (text.size() <= kMaxTopologyBytes && in.read(chunk, sizeof chunk).gcount() > 0)
    text.append(chunk, static_cast<size_t>(in.gcount()));
  if (in.bad())
    throw UserError(
        fmt::format("{}: cannot read the topology file: {}", path, std::strerror(errno)));
  return parse_topology(text, path);
}

void check_buildable(const Topology& t) {
  auto refuse = [](const Where& where, const std::string& what, const char* issue) {
    fail_at(where, "",
            fmt::format("{} is understood but not built yet by this version of "
                        "knetlab ({}); remove it to deploy the rest",
                        what, issue));
  };
  const char* later = "planned, no issue filed yet";
  const auto& n = t.network;
  if (n.ip_family != IpFamily::ipv4)
    refuse(n.where_ip_family, fmt::format("ipFamily = \"{}\"", enum_name(n.ip_family)), later);
  if (!t.racks.empty() && n.load_balancer_mode == LoadBalancerMode::cloud)
    for (const auto& s : t.services)
      if (s.type == ServiceType::load_balancer)
        fail_at(s.where, "",
                "a LoadBalancer service with [[racks]] needs loadBalancerMode = \"bgp\": the "
                "emulated cloud load balancer sits on a single LAN; in a routed fabric the "
                "nodes announce the address to their rack's router instead");
}

}  // namespace knl
