// exec: run a command inside a node, pod, container or host of a lab.

#include <fmt/format.h>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/util/error.h"

namespace knl::cli {

using nlohmann::json;

namespace {

const json& find_named(const json& list, const std::string& name, const std::string& what,
                       const json& state) {
  for (const auto& item : list)
    if (item["name"] == name) return item;
  std::vector<std::string> names;
  for (const auto& item : list) names.push_back(item["name"]);
  throw UserError(fmt::format("lab \"{}\" has no {} \"{}\" (it has: {})",
                              state["name"].get<std::string>(), what, name,
                              fmt::join(names, ", ")));
}

ExecTarget resolve_target(const json& state, const std::string& target,
                          const std::string& container) {
  auto slash = target.find('/');
  if (slash == std::string::npos)
    throw UserError(
        fmt::format("target \"{}\" must be node/NAME, pod/NAME, pod/NAMESPACE/NAME, "
                    "host/NAME or router/NAME",
                    target));
  auto kind = target.substr(0, slash), rest = target.substr(slash + 1);
  if (kind != "pod" && !container.empty()) throw UserError("-c CONTAINER goes with a pod/ target");
  if (kind == "node") return {find_named(state["nodes"], rest, "node", state)["netns"], 0};
  if (kind == "host") return {find_named(state["hosts"], rest, "host", state)["netns"], 0};
  if (kind == "router") return {find_named(state["routers"], rest, "router", state)["netns"], 0};
  if (kind != "pod")
    throw UserError(
        fmt::format("unknown target kind \"{}\"; use node/, pod/, host/ or router/", kind));
  std::string ns = "default", name = rest;
  if (auto second = rest.find('/'); second != std::string::npos)
    ns = rest.substr(0, second), name = rest.substr(second + 1);
  for (const auto& pod : state["pods"]) {
    if (pod["name"] != name || pod["namespace"] != ns) continue;
    if (!pod.contains("sandbox")) break;
    auto sandbox = process_of(pod["sandbox"]);
    if (container.empty()) {
      if (!process_alive(sandbox))
        throw SystemError(
            fmt::format("pod {}/{}: its sandbox (pid {}) is not running", ns, name, sandbox.pid),
            ESRCH);
      return {"", sandbox.pid};
    }
    const auto& c = find_named(pod["containers"], container, "container in pod " + name, state);
    auto process = process_of(c);
    if (!process_alive(process))
      throw UserError(fmt::format("container \"{}\" of pod {}/{} is not running (its log: {})",
                                  container, ns, name, c["log"].get<std::string>()));
    return {"", process.pid};
  }
  throw UserError(
      fmt::format("lab \"{}\" has no running pod \"{}\" in namespace \"{}\"; see "
                  "`knetlab get pods`",
                  state["name"].get<std::string>(), name, ns));
}

}  // namespace

int vtysh(const std::string& lab, const std::string& target,
          const std::vector<std::string>& commands) {
  auto state = read_state(pick_lab(lab));
  auto slash = target.find('/');
  auto kind = target.substr(0, slash);
  if (slash == std::string::npos || (kind != "node" && kind != "router"))
    throw UserError(fmt::format("vtysh needs node/NAME or router/NAME, not \"{}\"", target));
  const auto list = state.value(kind + "s", json::array());
  const auto& item = find_named(list, target.substr(slash + 1), kind, state);
  if (item.value("frr", json(nullptr)).is_null())
    throw UserError(fmt::format(
        "{} runs no FRR in lab \"{}\": nodes run it with cni = \"bgp\" or a LoadBalancer "
        "under loadBalancerMode = \"bgp\"; routers with [[racks]] (and the LAN's router when "
        "nodes peer with it)",
        target, state["name"].get<std::string>()));
  std::vector<std::string> argv = {"vtysh", "--vty_socket", item["frr"]["dir"]};
  for (const auto& c : commands) argv.insert(argv.end(), {"-c", c});
  return exec_in({item["netns"], 0}, argv, locate_install().path_env);
}

int exec(const std::string& lab, const std::string& target, const std::string& container,
         const std::vector<std::string>& command) {
  if (command.empty()) throw UserError("exec needs a command after --, e.g. -- ip addr");
  auto state = read_state(pick_lab(lab));
  return exec_in(resolve_target(state, target, container), command, locate_install().path_env);
}

}  // namespace knl::cli
