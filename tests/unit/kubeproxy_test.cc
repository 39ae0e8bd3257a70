// kube-proxy rule rendering, pinned against kube-proxy's own test vectors
// (pkg/proxy/nftables and pkg/proxy/iptables proxier tests).

#include <gtest/gtest.h>

#include "knetlab/plan/kubeproxy.h"

namespace knl {
namespace {

Ipv4 ip(const char* text) {
  return *Ipv4::parse(text);
}
Ipv4Net net(const char* text) {
  return *Ipv4Net::parse(text);
}

ProxyNode test_node() {
  return {"node1", ip("192.168.0.2"), net("10.0.0.0/8"), net("172.30.0.0/16")};
}

ServicePlan service(const char* ns, const char* name, const char* cluster_ip) {
  ServicePlan s;
  s.namespace_ = ns, s.name = name, s.type = ServiceType::cluster_ip;
  s.cluster_ip = ip(cluster_ip);
  s.ports.push_back({"p80", 80, 80, "", 0, Protocol::tcp});
  return s;
}

bool has(const std::vector<std::string>& rules, const std::string& rule) {
  return std::find(rules.begin(), rules.end(), rule) != rules.end();
}

TEST(KubeProxyHash, MatchesKubeProxyTestVectors) {
  EXPECT_EQ(nft_hash_name("ns1/svc1/tcp/p80"), "ULMVA6XW-ns1/svc1/tcp/p80");
  EXPECT_EQ(nft_hash_name("ns1/svc1/tcp/p80__10.180.0.1/80"),
            "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80");
  EXPECT_EQ(iptables_hash("ns1/svc1:p80tcp"), "XPGD46QRK7WJZT7O");
  EXPECT_EQ(iptables_hash("ns1/svc1:p80tcp10.180.0.1:80"), "SXIVWICOYRO3J4NJ");
}

TEST(KubeProxyNft, ClusterIpServiceAsKubeProxyWritesIt) {
  auto s = service("ns1", "svc1", "172.30.0.41");
  auto out = nft_service(test_node(), s, {{{ip("10.180.0.1"), 80, "node2", "ns1/a"}}});
  const std::string svc = "service-ULMVA6XW-ns1/svc1/tcp/p80";
  const std::string ep = "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80";
  ASSERT_TRUE(out.chains.count(svc));
  EXPECT_EQ(out.chains[svc],
            (std::vector<std::string>{
                "ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
                "numgen random mod 1 vmap { 0 : goto " + ep + " }"}));
  EXPECT_EQ(out.chains[ep],
            (std::vector<std::string>{"ip saddr 10.180.0.1 jump mark-for-masquerade",
                                      "meta l4proto tcp dnat to 10.180.0.1:80"}));
  EXPECT_EQ((out.elements[{"service-ips", "172.30.0.41 . tcp . 80"}]), " : goto " + svc);
  EXPECT_TRUE(out.elements.count({"cluster-ips", "172.30.0.41"}));
}

TEST(KubeProxyNft, LocalLoadBalancerWithoutLocalEndpointsDropsExternalTraffic) {
  auto s = service("ns2", "svc2", "172.30.0.42");
  s.type = ServiceType::load_balancer, s.external_local = true;
  s.load_balancer_ip = ip("1.2.3.4");
  s.ports[0].node_port = 3001;
  auto out = nft_service(test_node(), s, {{{ip("10.180.0.2"), 80, "node2", "ns2/a"}}});
  const std::string ext = "external-42NFTM6N-ns2/svc2/tcp/p80";
  const std::string svc = "service-42NFTM6N-ns2/svc2/tcp/p80";
  EXPECT_EQ(out.chains[ext],
            (std::vector<std::string>{
                "ip saddr 10.0.0.0/8 goto " + svc + " comment \"short-circuit pod traffic\"",
                "fib saddr type local jump mark-for-masquerade comment \"masquerade local "
                "traffic\"",
                "fib saddr type local goto " + svc + " comment \"short-circuit local traffic\""}));
  EXPECT_EQ((out.elements[{"no-endpoint-nodeports", "tcp . 3001"}]),
            " comment \"ns2/svc2:p80\" : drop");
  EXPECT_EQ((out.elements[{"no-endpoint-services", "1.2.3.4 . tcp . 80"}]),
            " comment \"ns2/svc2:p80\" : drop");
  EXPECT_EQ((out.elements[{"service-ips", "1.2.3.4 . tcp . 80"}]), " : goto " + ext);
  EXPECT_EQ((out.elements[{"service-nodeports", "tcp . 3001"}]), " : goto " + ext);
}

TEST(KubeProxyNft, AffinityAndSourceRanges) {
  auto s = service("ns5", "svc5", "172.30.0.45");
  s.type = ServiceType::load_balancer, s.affinity = true;
  s.load_balancer_ip = ip("5.6.7.8");
  s.source_ranges = {net("203.0.113.0/25")};
  s.ports[0].node_port = 3002;
  auto out = nft_service(test_node(), s, {{{ip("10.180.0.3"), 80, "node2", "ns5/a"}}});
  const std::string name = "GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80";
  EXPECT_EQ(out.sets["affinity-" + name],
            "{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }");
  EXPECT_TRUE(has(out.chains["service-HVFWP5L3-ns5/svc5/tcp/p80"],
                  "ip saddr @affinity-" + name + " goto endpoint-" + name));
  EXPECT_TRUE(has(out.chains["endpoint-" + name], "update @affinity-" + name + " { ip saddr }"));
  EXPECT_EQ(out.chains["firewall-HVFWP5L3-ns5/svc5/tcp/p80"],
            (std::vector<std::string>{"ip saddr != { 203.0.113.0/25 } drop"}));
  EXPECT_EQ(out.chains["external-HVFWP5L3-ns5/svc5/tcp/p80"],
            (std::vector<std::string>{"jump mark-for-masquerade",
                                      "goto service-HVFWP5L3-ns5/svc5/tcp/p80"}));
}

TEST(KubeProxyNft, NoEndpointsRejects) {
  auto out = nft_service(test_node(), service("ns6", "svc6", "172.30.0.46"), {{}});
  EXPECT_TRUE(out.chains.empty());
  EXPECT_EQ((out.elements[{"no-endpoint-services", "172.30.0.46 . tcp . 80"}]),
            " comment \"ns6/svc6:p80\" : goto reject-chain");
}

TEST(KubeProxyNft, ANodeThatCopiedAnothersRulesChangesExactlyTheServicesThatDifferOnIt) {
  const ProxyNode one = test_node();
  ProxyNode two = one;
  two.name = "node2", two.ip = ip("192.168.0.3");
  auto same = [](const NftPiece& a, const NftPiece& b) {
    return a.table == b.table && a.chains == b.chains && a.sets == b.sets &&
           a.elements == b.elements;
  };
  int differing = 0, alike = 0;
  for (auto type : {ServiceType::cluster_ip, ServiceType::node_port, ServiceType::load_balancer})
    for (bool internal_local : {false, true})
      for (bool external_local : {false, true}) {
        auto s = service("ns9", "svc9", "172.30.0.49");
        s.type = type, s.internal_local = internal_local, s.external_local = external_local;
        if (type != ServiceType::cluster_ip) s.ports[0].node_port = 30009;
        if (type == ServiceType::load_balancer) s.load_balancer_ip = ip("1.2.3.9");
        const ServiceEndpoints eps{
            {{ip("10.180.0.8"), 80, "node1", "ns9/a"}, {ip("10.180.0.9"), 80, "node2", "ns9/b"}}};
        const auto on_one = nft_service(one, s, eps), on_two = nft_service(two, s, eps);
        const std::map<std::string, NftPiece> copied{{s.key(), on_two}};
        auto steps = nft_after_copy(one, copied, {&s}, {{s.key(), eps}});
        ASSERT_FALSE(steps.empty());
        const bool differs = !same(on_one, on_two);
        (differs ? differing : alike)++;
        // One endpoint on each node: a Local policy that applies keeps each
        // node's own.
        EXPECT_EQ(differs, internal_local || (external_local && type != ServiceType::cluster_ip))
            << "type " << static_cast<int>(type) << ", internal Local " << internal_local
            << ", external Local " << external_local;
        EXPECT_EQ(steps.size() > 1, differs)
            << "type " << static_cast<int>(type) << ", internal Local " << internal_local
            << ", external Local " << external_local;
        if (steps.size() > 1) {
          ASSERT_EQ(steps.back().services.size(), 1u);
          EXPECT_TRUE(same(steps.back().services[0].second, on_one));
        }
      }
  EXPECT_GT(differing, 0);
  EXPECT_GT(alike, 0);
}

TEST(KubeProxyNft, TwoEndpointsSpreadByNumgen) {
  auto out = nft_service(
      test_node(), service("ns4", "svc4", "172.30.0.44"),
      {{{ip("10.180.0.4"), 80, "node2", "ns4/a"}, {ip("10.180.0.5"), 80, "node1", "ns4/b"}}});
  EXPECT_EQ(out.chains["service-LAUZTJTB-ns4/svc4/tcp/p80"][1],
            "numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 "
            ", 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }");
}

TEST(KubeProxyNft, TransactionTouchesOnlyWhatChanged) {
  auto s = service("ns4", "svc4", "172.30.0.44");
  Endpoint a{ip("10.180.0.4"), 80, "node2", "ns4/a"}, b{ip("10.180.0.5"), 80, "node1", "ns4/b"};
  auto before = nft_service(test_node(), s, {{a, b}});
  auto after = nft_service(test_node(), s, {{a}});
  NftTransaction tx;
  tx.change(before, after);
  auto text = tx.str();
  EXPECT_NE(text.find("flush chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80\n"),
            std::string::npos);
  EXPECT_NE(
      text.find("flush chain ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"),
      std::string::npos);
  EXPECT_EQ(tx.stale_chains(),
            (std::vector<std::string>{
                "ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"}));
  EXPECT_EQ(text.find("delete chain"), std::string::npos) << "deleted later, not in the sync";
  EXPECT_NE(text.find("add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 { ip daddr "),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80\n"), std::string::npos)
      << "the kept endpoint's chain is left alone:\n"
      << text;
  EXPECT_EQ(text.find("service-ips"), std::string::npos);
  NftTransaction none;
  none.change(after, after);
  EXPECT_TRUE(none.empty());
}

TEST(KubeProxyNft, ABigFirstLoadAddsChainsInStepsThenEveryElementAndSetAtTheEnd) {
  auto node = test_node();
  node.shards = 2;
  std::vector<ServicePlan> services;
  EndpointMap endpoints;
  // 250 services of 10 endpoints: 11 chains each, 2750 in all; one with
  // session affinity.
  for (int i = 0; i < 250; ++i) {
    auto name = "svc" + std::to_string(i);
    auto cip = "172.30." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 10);
    services.push_back(service("ns", name.c_str(), cip.c_str()));
    services.back().affinity = i == 7;
    std::vector<Endpoint> eps;
    for (int e = 0; e < 10; ++e)
      eps.push_back({net("10.180.0.0/16").at(i * 10 + e + 1), 80, "node2", "ns/p"});
    endpoints[services.back().key()] = {eps};
  }
  std::vector<const ServicePlan*> all;
  for (const auto& s : services) all.push_back(&s);
  auto steps = nft_sync(node, {}, all, endpoints, true);
  ASSERT_GE(steps.size(), 5u) << "base, chain steps of both tables, elements";
  EXPECT_EQ(steps[0].script.rfind("add table ip kube-proxy\ndelete table ip kube-proxy\nadd table "
                                  "ip kube-proxy-1\ndelete table ip kube-proxy-1\n",
                                  0),
            0u)
      << "a refused first load's remains go first";
  EXPECT_NE(steps[0].script.find("add chain ip kube-proxy services"), std::string::npos);
  const auto affinity_chain = "service-" + nft_hash_name("ns/svc7/tcp/p80");
  size_t chains = 0;
  for (size_t i = 1; i + 1 < steps.size(); ++i) {
    const auto& text = steps[i].script;
    EXPECT_TRUE(steps[i].services.empty()) << "chains alone do not bring a service up";
    EXPECT_EQ(text.find("add element"), std::string::npos) << text.substr(0, 500);
    EXPECT_EQ(text.find('@'), std::string::npos) << "no set named before the last step";
    EXPECT_EQ(text.find(affinity_chain), std::string::npos);
    EXPECT_TRUE(text.find("add chain ip kube-proxy ") == std::string::npos ||
                text.find("add chain ip kube-proxy-1 ") == std::string::npos)
        << "one table per step";
    size_t in_step = 0;
    for (size_t at = text.find(" ; }\n"); at != std::string::npos; at = text.find(" ; }\n", at + 1))
      ++in_step;
    EXPECT_LT(text.size(), kFirstLoadBytes + 4000) << "one service's chains past the limit";
    chains += in_step;
    // Each chain comes after those it jumps to: nothing is declared empty.
    EXPECT_EQ(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')), in_step)
        << "every line a block";
    for (size_t at = text.find("goto endpoint-"); at != std::string::npos;
         at = text.find("goto endpoint-", at + 1)) {
      auto name = text.substr(at + 5, text.find_first_of(" ;,", at + 5) - at - 5);
      EXPECT_LT(text.find(name + " {"), at) << name;
    }
  }
  EXPECT_EQ(chains, 249u * 11) << "every chain of the services without sets, as a block";
  const auto& last = steps.back();
  EXPECT_EQ(last.services.size(), 250u);
  EXPECT_NE(last.script.find(affinity_chain + " ip saddr @affinity-"), std::string::npos);
  EXPECT_NE(last.script.find("add element ip kube-proxy cluster-ips { 172.30.1.49 }"),
            std::string::npos);
  EXPECT_EQ(last.script.find("service-" + nft_hash_name("ns/svc8/tcp/p80") + " {"),
            std::string::npos);

  // A small lab loads in one transaction.
  all.resize(3);
  steps = nft_sync(node, {}, all, endpoints, true);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_NE(steps[0].script.find("add chain ip kube-proxy services"), std::string::npos);
  EXPECT_NE(steps[0].script.find("service-ips { 172.30.0.10 . tcp . 80"), std::string::npos);
  EXPECT_EQ(steps[0].services.size(), 3u);
}

TEST(KubeProxyIptables, ChainNamesAndProbabilities) {
  auto s = service("ns1", "svc1", "172.30.0.41");
  IptablesSynced synced;
  auto text = iptables_ruleset(
      test_node(), {s},
      {{"ns1/svc1",
        {{{ip("10.180.0.1"), 80, "node2", "ns1/a"}, {ip("10.180.0.2"), 80, "node1", "ns1/b"}}}}},
      nullptr, synced);
  EXPECT_NE(
      text.find("-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment \"ns1/svc1:p80 "
                "cluster IP\" -m tcp --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("-m statistic --mode random --probability 0.50000000000 -j "
                      "KUBE-SEP-SXIVWICOYRO3J4NJ"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("-A KUBE-SEP-SXIVWICOYRO3J4NJ -p tcp -m comment --comment ns1/svc1:p80 -m tcp "
                "-j DNAT --to-destination 10.180.0.1:80"),
      std::string::npos);
  IptablesSynced after;
  auto second = iptables_ruleset(test_node(), {s}, {}, &synced, after);
  EXPECT_NE(second.find("-X KUBE-SEP-SXIVWICOYRO3J4NJ"), std::string::npos);
  EXPECT_NE(second.find("-j REJECT --reject-with icmp-port-unreachable"), std::string::npos);
  EXPECT_EQ(second.find("-A PREROUTING"), std::string::npos);
}

TEST(KubeProxyIptables, APartialSyncWritesOnlyTheChangedServicesChainsAndKeepsTheOthers) {
  auto one = service("ns1", "one", "172.30.0.41"), two = service("ns1", "two", "172.30.0.42");
  EndpointMap eps = {{"ns1/one", {{{ip("10.180.0.1"), 80, "node2", "ns1/a"}}}},
                     {"ns1/two", {{{ip("10.180.0.2"), 80, "node2", "ns1/b"}}}}};
  IptablesSynced synced;
  auto full = iptables_ruleset(test_node(), {one, two}, eps, nullptr, synced);
  const std::string one_svc = "KUBE-SVC-" + iptables_hash("ns1/one:p80tcp");
  ASSERT_NE(full.find(":" + one_svc + " - [0:0]"), std::string::npos) << full;
  // two's endpoint moves; one is not written.
  eps["ns1/two"] = {{{ip("10.180.0.3"), 80, "node2", "ns1/c"}}};
  std::set<std::string> written = {"ns1/two"};
  IptablesSynced after;
  auto partial = iptables_ruleset(test_node(), {one, two}, eps, &synced, after, &written);
  EXPECT_EQ(partial.find(":" + one_svc), std::string::npos) << "declared would flush it";
  EXPECT_EQ(partial.find("-A " + one_svc), std::string::npos);
  EXPECT_EQ(partial.find("-X " + one_svc), std::string::npos);
  EXPECT_EQ(partial.find(":KUBE-SERVICES"), std::string::npos)
      << "KUBE-SERVICES' rules are the same: not written";
  EXPECT_EQ(partial.find("*filter"), std::string::npos) << "nothing changed there";
  EXPECT_NE(partial.find("--to-destination 10.180.0.3:80"), std::string::npos);
  EXPECT_NE(partial.find("-X KUBE-SEP-" + iptables_hash("ns1/two:p80tcp10.180.0.2:80")),
            std::string::npos)
      << partial;
  const auto& kept = after.services.at("ns1/one").chains;
  EXPECT_NE(std::find(kept.begin(), kept.end(), one_svc), kept.end())
      << "a kept chain is still the lab's";
  // two loses its endpoint: its KUBE-SERVICES jump becomes a REJECT in filter.
  eps.erase("ns1/two");
  IptablesSynced third;
  auto gone = iptables_ruleset(test_node(), {one, two}, eps, &after, third, &written);
  EXPECT_NE(gone.find(":KUBE-SERVICES - [0:0]"), std::string::npos) << gone;
  EXPECT_NE(gone.find("--dport 80 -j " + one_svc), std::string::npos)
      << "a written KUBE-SERVICES holds every service's jump";
  EXPECT_NE(gone.find("*filter"), std::string::npos);
}

}  // namespace
}  // namespace knl

namespace knl {
namespace {

TEST(KubeProxyNft, RulesPickerSpreadsWithoutAnonymousMaps) {
  auto node = test_node();
  node.picker = NftPicker::rules;
  auto out = nft_service(
      node, service("ns4", "svc4", "172.30.0.44"),
      {{{ip("10.180.0.4"), 80, "node2", "ns4/a"}, {ip("10.180.0.5"), 80, "node1", "ns4/b"}}});
  EXPECT_EQ(out.chains["service-LAUZTJTB-ns4/svc4/tcp/p80"],
            (std::vector<std::string>{
                "ip daddr 172.30.0.44 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
                "numgen random mod 2 0 goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80",
                "goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"}));
}

}  // namespace
}  // namespace knl

namespace knl {
namespace {

TEST(KubeProxyNft, MapPickerDnatsFromOneMapWithoutEndpointChainsAndMasqueradesHairpins) {
  auto node = test_node();
  node.picker = NftPicker::map;
  node.node_pods = net("10.180.0.0/29");
  auto out = nft_service(
      node, service("ns4", "svc4", "172.30.0.44"),
      {{{ip("10.180.0.4"), 80, "node2", "ns4/a"}, {ip("10.180.0.5"), 80, "node1", "ns4/b"}}});
  EXPECT_EQ(out.chains.size(), 1u) << "no endpoint- chains";
  EXPECT_EQ(out.chains["service-LAUZTJTB-ns4/svc4/tcp/p80"],
            (std::vector<std::string>{
                "ip daddr 172.30.0.44 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
                "meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.180.0.4 . 80 , 1 : "
                "10.180.0.5 . 80 }"}));
  // Affinity needs a set per endpoint: such a service keeps its endpoint chains.
  auto sticky = service("ns4", "sticky", "172.30.0.45");
  sticky.affinity = true;
  EXPECT_EQ(nft_service(node, sticky, {{{ip("10.180.0.4"), 80, "node2", "ns4/a"}}}).chains.size(),
            2u);
  auto base = nft_base(node);
  EXPECT_NE(base.find("insert rule ip kube-proxy masquerading ct status dnat ip saddr . ip daddr "
                      "@pod-hairpin jump mark-for-masquerade"),
            std::string::npos)
      << base;
  EXPECT_NE(base.find("add element ip kube-proxy pod-hairpin { 10.180.0.1 . 10.180.0.1, "
                      "10.180.0.2 . 10.180.0.2, 10.180.0.3 . 10.180.0.3, 10.180.0.4 . 10.180.0.4, "
                      "10.180.0.5 . 10.180.0.5, 10.180.0.6 . 10.180.0.6 }"),
            std::string::npos)
      << base;
  EXPECT_EQ(nft_base(test_node()).find("pod-hairpin"), std::string::npos) << "vmap: no set";
}

TEST(KubeProxyNft, ThousandsOfServicesSpreadTheirNatOverTablesWithOneFilter) {
  EXPECT_EQ(nft_tables_for(10, 30), 1);
  EXPECT_EQ(nft_tables_for(1000, 10000), 1);
  EXPECT_EQ(nft_tables_for(1001, 2000), 2);
  EXPECT_EQ(nft_tables_for(10000, 30000), 10);
  EXPECT_EQ(nft_tables_for(1000, 101000), 11) << "1000 services of 100 endpoints";
  auto node = test_node();
  node.shards = 3;
  auto base = nft_base(node);
  for (const char* table : {"ip kube-proxy ", "ip kube-proxy-1 ", "ip kube-proxy-2 "})
    EXPECT_NE(base.find(std::string("add table ") + table), std::string::npos) << table;
  EXPECT_NE(base.find("add rule ip kube-proxy nat-prerouting jump services"), std::string::npos);
  // Only the first table filters and masquerades; the others hook NAT at
  // prerouting and output only.
  EXPECT_NE(base.find("add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check"),
            std::string::npos);
  EXPECT_NE(base.find("add rule ip kube-proxy nat-postrouting jump masquerading"),
            std::string::npos);
  for (const char* table : {"ip kube-proxy-1 ", "ip kube-proxy-2 "}) {
    EXPECT_EQ(base.find(std::string("add set ") + table + "cluster-ips"), std::string::npos);
    EXPECT_EQ(base.find(std::string("add map ") + table + "no-endpoint-services"),
              std::string::npos);
    EXPECT_EQ(base.find(std::string(table) + "filter-"), std::string::npos) << table;
    EXPECT_EQ(base.find(std::string(table) + "nat-postrouting"), std::string::npos) << table;
    for (const char* chain : {"nat-output ", "nat-prerouting "})
      EXPECT_NE(base.find(std::string("add rule ") + table + chain +
                          "ip daddr . meta l4proto . th dport vmap @service-ips"),
                std::string::npos)
          << table << chain;
  }
  // A service's NAT chains and maps go to its table; its ClusterIP, its
  // no-endpoint and source-range entries and its firewall chain to the first.
  std::set<std::string> tables;
  for (int i = 0; i < 12; ++i) {
    auto name = "svc" + std::to_string(i);
    auto ip = "172.30.0." + std::to_string(10 + i);
    auto s = service("ns", name.c_str(), ip.c_str());
    s.type = ServiceType::load_balancer;
    s.load_balancer_ip = net("5.6.7.0/24").at(i + 1);
    s.source_ranges = {net("203.0.113.0/25")};
    const auto hashed = nft_hash_name("ns/" + name + "/tcp/p80");
    auto none = nft_service(node, s, {{}});
    tables.insert(none.table);
    NftTransaction tx(true, nft_table_of);
    tx.change({}, none);
    auto text = tx.str();
    EXPECT_NE(text.find("add element ip kube-proxy cluster-ips { " + ip + " }"), std::string::npos)
        << text;
    EXPECT_NE(text.find("add element ip kube-proxy no-endpoint-services { " + ip),
              std::string::npos)
        << text;
    auto ready = nft_service(node, s, {{{net("10.180.0.0/24").at(i + 1), 80, "node2", "ns/a"}}});
    EXPECT_EQ(ready.table, none.table) << "a service keeps its table";
    NftTransaction up(true, nft_table_of);
    up.change(none, ready);
    text = up.str();
    EXPECT_NE(text.find("delete element ip kube-proxy no-endpoint-services { " + ip),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("add element " + ready.table + " service-ips { " + ip), std::string::npos)
        << text;
    EXPECT_NE(text.find("add chain " + ready.table + " service-" + hashed), std::string::npos)
        << text;
    EXPECT_NE(text.find("add chain ip kube-proxy firewall-" + hashed), std::string::npos) << text;
    EXPECT_NE(text.find("add element ip kube-proxy firewall-ips { " + s.load_balancer_ip->str() +
                        " . tcp . 80 : goto firewall-" + hashed),
              std::string::npos)
        << text;
  }
  EXPECT_EQ(tables.size(), 3u) << "12 services use all 3 tables";
}

}  // namespace
}  // namespace knl
