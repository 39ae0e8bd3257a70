// The parser's network policies: [[networkPolicies]] with their selectors,
// peers and ports, validated as the Kubernetes API server validates them.

#include <fmt/format.h>

#include <set>

#include "knetlab/util/error.h"
#include "parser.h"

namespace knl::parsing {

namespace {

inline constexpr size_t kPolicyNameMax = 63;

// The requirements of a selector's matchExpressions.
std::vector<SelectorRequirement> requirements(const TableReader& t) {
  std::vector<SelectorRequirement> out;
  for (const auto& e : t.tables("matchExpressions")) {
    e.allow_only({"key", "operator", "values"});
    SelectorRequirement r{e.required_string("key"), SelectorOperator::in, e.strings("values")};
    if (!is_label_key(r.key))
      e.fail("key", fmt::format("\"{}\" is not a Kubernetes label key", excerpt(r.key)));
    if (!e.has("operator"))
      e.fail("operator", "a requirement needs \"operator\": In, NotIn, Exists or DoesNotExist");
    r.op = e.choice("operator", SelectorOperator::in);
    bool takes_values = r.op == SelectorOperator::in || r.op == SelectorOperator::not_in;
    if (takes_values && r.values.empty())
      e.fail("values",
             fmt::format("operator {} needs at least one value in \"values\"", enum_name(r.op)));
    if (!takes_values && !r.values.empty())
      e.fail("values", fmt::format("operator {} takes no \"values\"", enum_name(r.op)));
    for (const auto& v : r.values)
      if (!is_label_value(v))
        e.fail("values", fmt::format("\"{}\" is not a Kubernetes label value", excerpt(v)));
    out.push_back(std::move(r));
  }
  return out;
}

// A label selector written as a map of labels (`{ app = "web" }`, matchLabels
// in short), or as `{ matchLabels = {…}, matchExpressions = [{…}] }`: label
// values are strings, so a table or an array under those two keys tells the
// long form.
LabelSelector selector(const TableReader& owner, const std::string& key) {
  LabelSelector out;
  auto t = owner.table(key);
  if (!t) return out;
  auto long_form = [&](const char* k, toml::value_t type) {
    const auto* v = t->find(k);
    return v && v->type() == type;
  };
  if (long_form("matchLabels", toml::value_t::table) ||
      long_form("matchExpressions", toml::value_t::array)) {
    t->allow_only({"matchLabels", "matchExpressions"});
    out.match_labels = t->labels("matchLabels");
    out.match_expressions = requirements(*t);
    return out;
  }
  out.match_labels = owner.labels(key);
  return out;
}

IpBlock ip_block(const TableReader& t) {
  t.allow_only({"cidr", "except"});
  if (!t.has("cidr")) t.fail("cidr", "an ipBlock needs \"cidr\", such as \"172.18.0.0/24\"");
  IpBlock block{t.cidr("cidr", ""), {}};
  for (const auto& text : t.strings("except")) {
    auto net = Ipv4Net::parse(text);
    if (!net)
      t.fail("except", fmt::format("\"{}\" in \"except\" is not an IPv4 network such as "
                                   "\"172.18.0.9/32\"",
                                   excerpt(text)));
    if (net->prefix <= block.cidr.prefix || !block.cidr.contains(net->network))
      t.fail("except", fmt::format("except \"{}\" must lie strictly inside cidr \"{}\"", net->str(),
                                   block.cidr.str()));
    block.except.push_back(*net);
  }
  return block;
}

PolicyPeer peer(const TableReader& t) {
  t.allow_only({"podSelector", "namespaceSelector", "ipBlock"});
  PolicyPeer p;
  if (t.has("podSelector")) p.pod_selector = selector(t, "podSelector");
  if (t.has("namespaceSelector")) p.namespace_selector = selector(t, "namespaceSelector");
  if (auto block = t.table("ipBlock")) {
    if (p.pod_selector || p.namespace_selector)
      t.fail("ipBlock",
             "a peer with \"ipBlock\" may not also have a podSelector or namespaceSelector; "
             "write them as two peers");
    p.ip_block = ip_block(*block);
  }
  if (!p.pod_selector && !p.namespace_selector && !p.ip_block)
    t.fail("", "a peer needs a podSelector, a namespaceSelector or an ipBlock");
  return p;
}

PolicyPort port(const TableReader& t) {
  t.allow_only({"protocol", "port", "endPort"});
  PolicyPort p{t.choice("protocol", Protocol::tcp)};
  if (const auto* v = t.find("port"); v && v->is_string()) {
    p.port_name = v->as_string().str;
    if (!is_dns_label(p.port_name, 15) ||
        p.port_name.find_first_of("abcdefghijklmnopqrstuvwxyz") == std::string::npos)
      t.fail("port", fmt::format("port \"{}\" is neither a number nor a container port's name "
                                 "(1..15 characters of a-z, 0-9 and '-', with a letter)",
                                 excerpt(p.port_name)));
  } else if (v) {
    p.port = static_cast<int>(t.integer("port", 0, 1, 65535));
  }
  if (t.has("endPort")) {
    if (p.port == 0)
      t.fail("endPort", "\"endPort\" needs a numeric \"port\" to start the range from");
    p.end_port = static_cast<int>(t.integer("endPort", 0, p.port, 65535));
  }
  return p;
}

}  // namespace

void Parser::network_policies() {
  UniqueNames names("network policy");
  for (const auto& t : root_.tables("networkPolicies")) {
    t.allow_only({"name", "namespace", "podSelector", "policyTypes", "ingress", "egress"});
    NetworkPolicy np;
    np.name = name_of(t, kPolicyNameMax);
    np.namespace_ = namespace_of(t);
    np.where = t.where();
    names.add(t, np.key());
    if (!t.has("podSelector"))
      t.fail("podSelector",
             "a policy needs \"podSelector\" (write podSelector = {} to select every pod of its "
             "namespace)");
    np.pod_selector = selector(t, "podSelector");
    for (auto type : {PolicyType::ingress, PolicyType::egress}) {
      auto& rules = type == PolicyType::ingress ? np.ingress_rules : np.egress_rules;
      const char* key = type == PolicyType::ingress ? "ingress" : "egress";
      const char* peers = type == PolicyType::ingress ? "from" : "to";
      for (const auto& r : t.tables(key)) {
        r.allow_only({peers, "ports"});
        PolicyRule rule;
        rule.where = r.where();
        for (const auto& p : r.tables(peers)) rule.peers.push_back(peer(p));
        for (const auto& p : r.tables("ports")) rule.ports.push_back(port(p));
        rules.push_back(std::move(rule));
      }
    }
    np.ingress = true;
    np.egress = !np.egress_rules.empty();
    if (!t.strings("policyTypes").empty()) {
      std::set<PolicyType> types;
      for (const auto& type : t.strings("policyTypes")) {
        auto parsed = enum_from_name<PolicyType>(type);
        if (!parsed)
          t.fail("policyTypes", fmt::format("policy type \"{}\" must be \"Ingress\" or \"Egress\"",
                                            excerpt(type)));
        if (!types.insert(*parsed).second)
          t.fail("policyTypes", fmt::format("policy type \"{}\" is written twice", excerpt(type)));
      }
      np.ingress = types.count(PolicyType::ingress) > 0;
      np.egress = types.count(PolicyType::egress) > 0;
      for (auto type : {PolicyType::ingress, PolicyType::egress})
        if (!np.affects(type) && !np.rules(type).empty())
          t.fail("policyTypes",
                 fmt::format("{} rules are written but policyTypes leaves out \"{}\": Kubernetes "
                             "would ignore them; add \"{}\" or remove the rules",
                             type == PolicyType::ingress ? "ingress" : "egress", enum_name(type),
                             enum_name(type)));
    }
    topo_.network_policies.push_back(std::move(np));
  }
}

}  // namespace knl::parsing
