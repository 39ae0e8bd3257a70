// exec: run a command inside a node, pod, container or host of a lab.

#include <fmt/format.h>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/util/error.h"

namespace knl::cli {

namespace {

template <typename T>
const T& find_named(const std::vector<T>& list, const std::string& name, const std::string& what,
                    const LabRecord& state) {
  for (const auto& item : list)
    if (item.name == name) return item;
  std::vector<std::string> names;
  for (const auto& item : list) names.push_back(item.name);
  throw UserError(fmt::format("lab \"{}\" has no {} \"{}\" (it has: {})", state.name, what, name,
                              fmt::join(names, ", ")));
}

ExecTarget resolve_target(const LabRecord& state, const std::string& target,
                          const std::string& container) {
  auto slash = target.find('/');
  if (slash == std::string::npos)
    throw UserError(
        fmt::format("target \"{}\" must be node/NAME, pod/NAME, pod/NAMESPACE/NAME, "
                    "host/NAME or router/NAME",
                    target));
  auto kind = target.substr(0, slash), rest = target.substr(slash + 1);
  if (kind != "pod" && !container.empty()) throw UserError("-c CONTAINER goes with a pod/ target");
  if (kind == "node") return {find_named(state.nodes, rest, "node", state).netns, 0};
  if (kind == "host") return {find_named(state.hosts, rest, "host", state).netns, 0};
  if (kind == "router") return {find_named(state.routers, rest, "router", state).netns, 0};
  if (kind != "pod")
    throw UserError(
        fmt::format("unknown target kind \"{}\"; use node/, pod/, host/ or router/", kind));
  std::string ns = "default", name = rest;
  if (auto second = rest.find('/'); second != std::string::npos)
    ns = rest.substr(0, second), name = rest.substr(second + 1);
  for (const auto& pod : state.pods) {
    if (pod.name != name || pod.namespace_ != ns) continue;
    if (!pod.sandbox) break;
    if (container.empty()) {
      if (!process_alive(*pod.sandbox))
        throw SystemError(fmt::format("pod {}/{}: its sandbox (pid {}) is not running", ns, name,
                                      pod.sandbox->pid),
                          ESRCH);
      return {"", pod.sandbox->pid};
    }
    const auto& c = find_named(pod.containers, container, "container in pod " + name, state);
    if (!c.process || !process_alive(*c.process))
      throw UserError(fmt::format("container \"{}\" of pod {}/{} is not running (its log: {})",
                                  container, ns, name, c.log));
    return {"", c.process->pid};
  }
  throw UserError(
      fmt::format("lab \"{}\" has no running pod \"{}\" in namespace \"{}\"; see "
                  "`knetlab get pods`",
                  state.name, name, ns));
}

}  // namespace

int vtysh(const std::string& lab, const std::string& target,
          const std::vector<std::string>& commands) {
  auto state = read_state(pick_lab(lab));
  auto slash = target.find('/');
  auto kind = target.substr(0, slash);
  if (slash == std::string::npos || (kind != "node" && kind != "router"))
    throw UserError(fmt::format("vtysh needs node/NAME or router/NAME, not \"{}\"", target));
  auto name = target.substr(slash + 1);
  const auto& frr = kind == "node" ? find_named(state.nodes, name, kind, state).frr
                                   : find_named(state.routers, name, kind, state).frr;
  const auto& netns = kind == "node" ? find_named(state.nodes, name, kind, state).netns
                                     : find_named(state.routers, name, kind, state).netns;
  if (!frr)
    throw UserError(fmt::format(
        "{} runs no FRR in lab \"{}\": nodes run it with cni = \"bgp\" or a LoadBalancer "
        "under loadBalancerMode = \"bgp\"; routers with [[racks]] (and the LAN's router when "
        "nodes peer with it)",
        target, state.name));
  std::vector<std::string> argv = {"vtysh", "--vty_socket", frr->dir};
  for (const auto& c : commands) argv.insert(argv.end(), {"-c", c});
  return exec_in({netns, 0}, argv, locate_install().path_env);
}

int exec(const std::string& lab, const std::string& target, const std::string& container,
         const std::vector<std::string>& command) {
  if (command.empty()) throw UserError("exec needs a command after --, e.g. -- ip addr");
  auto state = read_state(pick_lab(lab));
  return exec_in(resolve_target(state, target, container), command, locate_install().path_env);
}

}  // namespace knl::cli
