// The real kernel's nftables loads (Kernel::nft_load): copies from threads,
// big transactions in child processes, small ones through the process's kept
// context of the namespace, against namespaces made for the test alone.

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "knetlab/kernel/kernel.h"

namespace knl::test {
namespace {

// Namespaces made with `ip netns add`, deleted however the test ends.
class Namespaces {
 public:
  explicit Namespaces(std::vector<std::string> names) : names_(std::move(names)) {
    for (const auto& n : names_) run({"ip", "netns", "add", n});
  }
  ~Namespaces() {
    for (const auto& n : names_) run({"ip", "netns", "delete", n});
  }

 private:
  std::vector<std::string> names_;
};

std::string tables_of(const std::string& netns) {
  return run({"ip", "netns", "exec", netns, "nft", "list", "tables"}).out;
}

// nftables netlink sockets open in `netns`: the kernel's own and those of
// any process.
size_t nftables_sockets(const std::string& netns) {
  auto lines = run({"ip", "netns", "exec", netns, "cat", "/proc/net/netlink"}).out;
  size_t count = 0;
  std::istringstream in(lines);
  std::string sk, protocol, line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    if (fields >> sk >> protocol && protocol == "12") ++count;  // NETLINK_NETFILTER
  }
  return count;
}

TEST(ROOT_Kernel, NftLoadsSayHowFarEachWentInChildrenOrInThisProcess) {
  KNL_REQUIRE_ROOT();
  const std::vector<std::string> names{"knl-kt-a", "knl-kt-b", "knl-kt-c", "knl-kt-d"};
  Namespaces made(names);
  auto kernel = make_netlink_kernel();
  std::vector<NftLoad> loads;
  loads.push_back({"knl-kt-a", [] {
                     return std::vector<std::string>{"add table ip one\n", "add table ip two\n"};
                   }});
  loads.push_back({"knl-kt-b", [] {
                     return std::vector<std::string>{
                         "add table ip one\n", "add table ip two\nadd rule ip nowhere c accept\n",
                         "add table ip three\n"};
                   }});
  loads.push_back({"knl-kt-c", [] { return std::vector<std::string>{"add table ip one\n"}; }});
  loads.push_back(
      {"knl-kt-missing", [] { return std::vector<std::string>{"add table ip one\n"}; }});
  // As big as a load that runs in a child: the same refusal, told the same way.
  loads.push_back({"knl-kt-d", [] {
                     std::string padding;
                     while (padding.size() < kNftLoadInChildBytes)
                       padding += "# a comment line that nft skips, to make the load big\n";
                     return std::vector<std::string>{
                         padding + "add table ip one\n",
                         "add table ip two\nadd rule ip nowhere c accept\n"};
                   }});
  auto results = kernel->nft_load(loads);
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(results[0].applied, 2u);
  EXPECT_EQ(results[0].error, "");
  EXPECT_EQ(tables_of("knl-kt-a"), "table ip one\ntable ip two\n");
  EXPECT_EQ(results[1].applied, 1u) << "the second transaction was refused, the third not run";
  EXPECT_NE(results[1].error.find("load nftables rules in netns knl-kt-b"), std::string::npos)
      << results[1].error;
  EXPECT_NE(results[1].error.find("Error: Could not process rule: No such file or directory"),
            std::string::npos)
      << "nft's own message: " << results[1].error;
  EXPECT_EQ(tables_of("knl-kt-b"), "table ip one\n") << "a refused transaction leaves nothing";
  EXPECT_EQ(results[2].applied, 1u);
  EXPECT_EQ(tables_of("knl-kt-c"), "table ip one\n");
  EXPECT_EQ(results[3].applied, 0u);
  EXPECT_NE(results[3].error.find("knl-kt-missing"), std::string::npos) << results[3].error;
  EXPECT_EQ(results[4].applied, 1u);
  EXPECT_NE(results[4].error.find("load nftables rules in netns knl-kt-d"), std::string::npos)
      << results[4].error;
  EXPECT_NE(results[4].error.find("Error: Could not process rule: No such file or directory"),
            std::string::npos)
      << "nft's own message: " << results[4].error;
  EXPECT_EQ(tables_of("knl-kt-d"), "table ip one\n");
  // A small load's context stays open in this process (closing it right
  // after a delete would wait for the kernel); the big load's child is gone
  // with its own: besides the kernel's, one socket against none.
  EXPECT_EQ(nftables_sockets("knl-kt-a"), nftables_sockets("knl-kt-d") + 1);
  // The namespace's context in this process sees the load.
  kernel->nft_apply("knl-kt-a", "delete table ip two\n");
  EXPECT_EQ(tables_of("knl-kt-a"), "table ip one\n");
}

std::string table_of(const std::string& netns, const std::string& table) {
  return run({"ip", "netns", "exec", netns, "nft", "list", "table", "ip", table}).out;
}

// Every kind of object kube-proxy's tables hold: comments, a base chain, named
// sets and maps with concatenated keys, an element comment, an anonymous
// verdict map, an anonymous interval set (before another rule of its chain),
// a dynamic set a rule updates.
constexpr const char* kCopied = R"(
add table ip kp { comment "copied" ; }
add set ip kp nodeport-ips { type ipv4_addr ; comment "the node" ; }
add set ip kp pairs { type ipv4_addr . ipv4_addr ; }
add set ip kp seen { type ipv4_addr ; flags dynamic,timeout ; timeout 3h ; }
add map ip kp service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map ip kp no-endpoints { type ipv4_addr . inet_proto . inet_service : verdict ; }
add chain ip kp mark-for-masquerade
add chain ip kp endpoint-a { ip saddr 10.244.0.2 jump mark-for-masquerade ; update @seen { ip saddr } ; meta l4proto tcp dnat to 10.244.0.2:8080 ; }
add chain ip kp endpoint-b { meta l4proto tcp dnat to 10.244.1.2:8080 ; }
add chain ip kp service { numgen random mod 2 vmap { 0 : goto endpoint-a, 1 : goto endpoint-b } ; }
add chain ip kp firewall { ip saddr != { 10.0.0.0/8, 192.168.0.0/16 } drop ; ip daddr 10.96.0.2 accept ; }
add chain ip kp prerouting { type nat hook prerouting priority -100 ; }
add rule ip kp mark-for-masquerade mark set mark or 0x4000
add rule ip kp prerouting ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kp prerouting ip saddr . ip daddr @pairs jump mark-for-masquerade comment "hairpin"
add element ip kp service-ips { 10.96.0.1 . tcp . 80 : goto service, 10.96.0.2 . tcp . 80 : goto firewall }
add element ip kp no-endpoints { 10.96.0.3 . tcp . 80 comment "ns/empty:http" : drop }
add element ip kp nodeport-ips { 172.18.0.2 }
add element ip kp pairs { 10.244.0.2 . 10.244.0.2 }
add element ip kp seen { 10.244.9.9 }
add table ip kp-1
add set ip kp-1 nodeport-ips { type ipv4_addr ; }
add element ip kp-1 nodeport-ips { 172.18.0.2 }
add table ip other
)";

TEST(ROOT_Kernel, ACopyGivesANamespaceAnothersTablesWithItsOwnElementsOfTheNamedSets) {
  KNL_REQUIRE_ROOT();
  Namespaces made({"knl-kt-from", "knl-kt-to", "knl-kt-bad", "knl-kt-only"});
  auto kernel = make_netlink_kernel();
  kernel->nft_apply("knl-kt-from", kCopied);
  NftCopy copy{"knl-kt-from", {"kp", "kp-1"}, {}};
  const auto node = *Ipv4::parse("172.18.0.9"), pod = *Ipv4::parse("10.244.4.2");
  copy.elements["kp"]["nodeport-ips"] = {{node}};
  copy.elements["kp"]["pairs"] = {{pod, pod}};
  copy.elements["kp-1"]["nodeport-ips"] = {{node}};
  // A transaction after the copy names its objects, as a node's later syncs do.
  const std::string later =
      "add element ip kp service-ips { 10.96.0.4 . tcp . 80 : goto service }\n";
  std::vector<NftLoad> loads;
  loads.push_back({"knl-kt-to", [&] { return std::vector<std::string>{later}; }, copy});
  // A copy alone, and a copy into a namespace that does not exist.
  loads.push_back({"knl-kt-only", [] { return std::vector<std::string>{}; }, copy});
  loads.push_back({"knl-kt-nowhere", [] { return std::vector<std::string>{}; }, copy});
  copy.tables.push_back("missing");
  loads.push_back({"knl-kt-bad", [] { return std::vector<std::string>{}; }, copy});
  auto results = kernel->nft_load(loads);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].error, "");
  EXPECT_EQ(results[0].applied, 2u) << "the copy, then the transaction after it";
  EXPECT_EQ(results[1].error, "");
  EXPECT_EQ(results[1].applied, 1u);
  EXPECT_EQ(results[2].applied, 0u);
  EXPECT_NE(results[2].error.find("knl-kt-nowhere"), std::string::npos) << results[2].error;
  EXPECT_EQ(tables_of("knl-kt-only"), "table ip kp\ntable ip kp-1\n");
  EXPECT_NE(table_of("knl-kt-only", "kp").find("elements = { 172.18.0.9 }"), std::string::npos)
      << "the copy alone has the node's own elements too";

  // What nft prints of the copy is what it prints of the original (given the
  // same later transaction), but for the replaced elements and the dynamic
  // set's, which are left behind.
  kernel->nft_apply("knl-kt-from", later);
  auto expected = table_of("knl-kt-from", "kp");
  auto replace = [&](const std::string& from, const std::string& to) {
    auto at = expected.find(from);
    ASSERT_NE(at, std::string::npos) << from << " in " << expected;
    expected.replace(at, from.size(), to);
  };
  replace("elements = { 172.18.0.2 }", "elements = { 172.18.0.9 }");
  replace("elements = { 10.244.0.2 . 10.244.0.2 }", "elements = { 10.244.4.2 . 10.244.4.2 }");
  const std::string dynamic = "\t\ttimeout 3h\n";
  auto line = expected.find(dynamic) + dynamic.size();
  const std::string elements = "\t\telements = ";
  ASSERT_EQ(expected.compare(line, elements.size(), elements), 0) << expected;
  expected.erase(line, expected.find('\n', line) + 1 - line);
  EXPECT_EQ(table_of("knl-kt-to", "kp"), expected);
  EXPECT_EQ(table_of("knl-kt-to", "kp-1"),
            "table ip kp-1 {\n\tset nodeport-ips {\n\t\ttype ipv4_addr\n\t\telements = { "
            "172.18.0.9 }\n\t}\n}\n");
  EXPECT_EQ(tables_of("knl-kt-to"), "table ip kp\ntable ip kp-1\n") << "only the tables named";

  EXPECT_EQ(results[3].applied, 0u);
  EXPECT_NE(results[3].error.find("copy nftables tables from netns knl-kt-from"), std::string::npos)
      << results[3].error;
  EXPECT_EQ(tables_of("knl-kt-bad"), "") << "a copy that fails leaves nothing";
}

}  // namespace
}  // namespace knl::test
