#pragma once
// One function per verb; each returns the process exit status.

#include <string>
#include <vector>

namespace knl::cli {

struct ListOptions {
  std::string lab;
  std::string format = "table";  // table | json | wide
  std::string namespace_;        // -n: only this namespace's pods and services
  bool all_namespaces = false;   // -A: the cluster's own (kube-system) too
};

int validate(const std::string& file);
int deploy(const std::string& file, bool quiet);
int destroy(const std::string& file, const std::string& lab, bool all);
int inspect(const ListOptions& options);
int get(const std::string& kind, const std::string& name, const ListOptions& options);
/// `target` is KIND/NAME or KIND/NAMESPACE/NAME: a pod, service or network policy.
int describe(const std::string& target, const ListOptions& options);
int scale(const std::string& lab, const std::string& target, int replicas);
int remove(const std::string& lab, const std::string& target);
struct CheckOptions {
  std::string lab;
  bool policies = false;         // the network-policy truth tables instead
  std::string format = "table";  // table | json
  std::string junit;             // where to write every probe as JUnit XML; empty: nowhere
};
int check(const CheckOptions& options);
/// FRR's shell of node/NAME or router/NAME; each of `commands` as vtysh -c.
int vtysh(const std::string& lab, const std::string& target,
          const std::vector<std::string>& commands);
int exec(const std::string& lab, const std::string& target, const std::string& container,
         const std::vector<std::string>& command);
/// cni = "external": `action` "check" runs the CHECK of pod `target`'s chain
/// and prints each plugin's verdict (1 when one fails); "result" prints its
/// cached ADD result.
int cni(const std::string& lab, const std::string& action, const std::string& target);

}  // namespace knl::cli
