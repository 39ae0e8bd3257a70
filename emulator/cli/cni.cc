// cni check / cni result: a pod's CNI attachment in a cni = "external" lab.

#include <fmt/format.h>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/kernel/programs.h"
#include "knetlab/realize/cni.h"
#include "knetlab/util/error.h"

namespace knl::cli {

namespace {

const PodRecord& attached_pod(const LabRecord& state, const std::string& target) {
  if (state.network.cni != Cni::external)
    throw UserError(fmt::format(
        "lab \"{}\" runs cni = \"{}\": its pods are wired by knetlab itself, not by CNI plugins",
        state.name, enum_name(state.network.cni)));
  if (target.rfind("pod/", 0) != 0)
    throw UserError(fmt::format("\"{}\": cni works on pod/NAME or pod/NAMESPACE/NAME", target));
  auto rest = target.substr(4);
  std::string ns = "default", name = rest;
  if (auto slash = rest.find('/'); slash != std::string::npos)
    ns = rest.substr(0, slash), name = rest.substr(slash + 1);
  for (const auto& pod : state.pods) {
    if (pod.name != name || pod.namespace_ != ns) continue;
    if (pod.host_network)
      throw UserError(fmt::format(
          "pod {}/{} uses its node's network (hostNetwork): no CNI plugin wired it", ns, name));
    return pod;
  }
  throw UserError(
      fmt::format("lab \"{}\" has no pod \"{}\" in namespace \"{}\"; see "
                  "`knetlab get pods -A`",
                  state.name, name, ns));
}

}  // namespace

int cni(const std::string& lab, const std::string& action, const std::string& target) {
  auto state = read_state(pick_lab(lab));
  const auto& pod = attached_pod(state, target);
  auto path = CniPlugins::cache_path(lab_dir(state.name), state.name, pod.node, pod.key());
  if (action == "result") {
    auto cached = CniPlugins::cached(path);
    if (!cached.contains("result"))
      throw UserError(fmt::format("pod {}: its ADD has not completed", pod.key()));
    fmt::print("{}\n", cached["result"].dump(2));
    return 0;
  }
  auto programs = make_programs();
  auto verdicts = CniPlugins::check(*programs, path);
  std::vector<std::vector<std::string>> rows{{"PLUGIN", "CHECK", "MESSAGE"}};
  bool ok = true;
  for (const auto& v : verdicts) {
    rows.push_back({v.type, v.ok ? "ok" : "FAILED", v.message});
    ok = ok && v.ok;
  }
  print_table(rows);
  fmt::print("pod {}: CHECK {}\n", pod.key(), ok ? "passed" : "failed");
  return ok ? 0 : 1;
}

}  // namespace knl::cli
