// The real kernel's nftables loads in child processes (Kernel::nft_load),
// against namespaces made for the test alone.

#include <gtest/gtest.h>

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

TEST(ROOT_Kernel, NftLoadsRunInParallelChildrenAndSayHowFarEachWent) {
  KNL_REQUIRE_ROOT();
  const std::vector<std::string> names{"knl-kt-a", "knl-kt-b", "knl-kt-c"};
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
  auto results = kernel->nft_load(loads);
  ASSERT_EQ(results.size(), 4u);
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
  // The namespace's context in this process is new, and sees the load.
  kernel->nft_apply("knl-kt-a", "delete table ip two\n");
  EXPECT_EQ(tables_of("knl-kt-a"), "table ip one\n");
}

}  // namespace
}  // namespace knl::test
