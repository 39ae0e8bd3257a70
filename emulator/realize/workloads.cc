// The ReplicaSet's part of the controller: scale and delete. New pods are
// placed by the plan's scheduler and addressed by its allocator, as deploy
// placed the first ones; endpoints and rules follow before the answer.

#include <fmt/format.h>

#include <algorithm>

#include "knetlab/plan/scheduler.h"
#include "knetlab/realize/controller.h"
#include "knetlab/realize/executor.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

// "ns/name" or "name" (then in any namespace, if only one has it).
bool matches(const std::string& wanted, const std::string& ns, const std::string& name) {
  return wanted == name || wanted == ns + "/" + name;
}

// The index of a deployment's pod named DEPLOYMENT-INDEX; -1 for another name.
int replica_index(const std::string& pod, const std::string& deployment) {
  if (pod.size() <= deployment.size() + 1) return -1;
  auto suffix = pod.substr(deployment.size() + 1);
  return std::all_of(suffix.begin(), suffix.end(), ::isdigit) ? std::stoi(suffix) : -1;
}

}  // namespace

void Controller::adopt(const std::map<std::string, PodProcesses>& pods) {
  for (const auto& [key, procs] : pods) {
    lab_.processes[key] = procs;
    lab_.health[key] = {};
  }
}

const Deployment& Controller::find_deployment(const std::string& name) const {
  const Deployment* found = nullptr;
  for (const auto& d : lab_.topology.deployments)
    if (matches(name, d.namespace_, d.name)) {
      if (found)
        throw UserError(fmt::format(
            "deployment \"{}\" exists in several namespaces; write deployment/NAMESPACE/NAME",
            name));
      found = &d;
    }
  if (!found) {
    std::vector<std::string> names;
    for (const auto& d : lab_.topology.deployments) names.push_back(d.namespace_ + "/" + d.name);
    throw UserError(
        fmt::format("lab \"{}\" has no deployment \"{}\" (deployments: {})", lab_.plan.lab, name,
                    names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
  }
  return *found;
}

std::string Controller::add_replica(const Deployment& d) {
  auto& plan = lab_.plan;
  auto scheduler = Scheduler::of(plan);
  auto node = scheduler.pick(d.nodes, d.spec.host_network, d.namespace_ + "/" + d.name);
  if (!node)
    throw SystemError(
        fmt::format("no node has room for another pod of deployment {}/{}", d.namespace_, d.name),
        ENOSPC);
  auto& index = plan.cursors.next_replica[d.namespace_ + "/" + d.name];
  Pod pod{fmt::format("{}-{}", d.name, index), d.namespace_, *node, d.spec, d.name, d.where};
  const auto& node_plan = *std::find_if(plan.nodes.begin(), plan.nodes.end(),
                                        [&](const NodePlan& n) { return n.name == *node; });
  // With cni = "external" the plugins give the address (Executor::add_pods).
  Ipv4 ip = node_plan.ip;
  auto addresses = PodAddresses::of(plan);
  if (!d.spec.host_network)
    ip = plan.network.cni == Cni::external ? Ipv4{} : addresses.allocate(*node);
  auto fragment = plan_added_pod(lab_.topology, lab_.context, plan, pod, ip);
  auto started =
      Executor(effects_.kernel, effects_.runtime, effects_.programs, effects_.journal, {})
          .add_pods(fragment, lab_.mount_template);
  ++index;
  plan.cursors.last_pod_ip = addresses.last();
  ip = fragment.pods.back().ip;
  adopt(started);
  adopt_fragment(plan, std::move(fragment));
  effects_.event(fmt::format("pod {}/{} created on node {} with IP {}", pod.namespace_, pod.name,
                             *node, ip.str()));
  return pod.namespace_ + "/" + pod.name;
}

void Controller::delete_pod(const std::string& key) {
  // Out of the endpoints first, as Kubernetes does for a terminating pod.
  lab_.health[key].terminating = true;
  pass(Changes{.pods = {key}});
  auto it = std::find_if(lab_.plan.pods.begin(), lab_.plan.pods.end(),
                         [&](const PodPlan& p) { return p.key() == key; });
  Executor(effects_.kernel, effects_.runtime, effects_.programs, effects_.journal, {})
      .remove_pod(lab_.plan, *it, lab_.processes[key]);
  lab_.processes.erase(key);
  lab_.health.erase(key);
  forget_pod(lab_.plan, key);
  effects_.event(fmt::format("pod {} deleted", key));
}

ScaleResult Controller::scale(const std::string& name, int replicas) {
  if (replicas < 0) throw UserError("--replicas must be 0 or more");
  const auto& d = find_deployment(name);
  std::vector<std::pair<int, std::string>> current;
  for (const auto& p : lab_.plan.pods)
    if (p.deployment == d.name && p.namespace_ == d.namespace_)
      current.push_back({replica_index(p.name, d.name), p.key()});
  std::sort(current.begin(), current.end());
  ScaleResult result{d.namespace_ + "/" + d.name, replicas, {}, {}, 0};
  // The newest pods go first, as a ReplicaSet scaling down picks them.
  while (static_cast<int>(current.size()) > replicas) {
    delete_pod(current.back().second);
    result.removed.push_back(current.back().second);
    current.pop_back();
  }
  for (auto n = static_cast<int>(current.size()); n < replicas; ++n)
    result.added.push_back(add_replica(d));
  pass(Changes{.pods = {result.added.begin(), result.added.end()}});
  result.sync_seconds = last_pass_seconds_;
  return result;
}

DeleteResult Controller::remove(const std::string& name) {
  std::vector<const PodPlan*> found;
  for (const auto& p : lab_.plan.pods)
    if (matches(name, p.namespace_, p.name)) found.push_back(&p);
  if (found.empty())
    throw UserError(fmt::format("lab \"{}\" has no pod \"{}\"", lab_.plan.lab, name));
  if (found.size() > 1)
    throw UserError(
        fmt::format("pod \"{}\" exists in several namespaces; write pod/NAMESPACE/NAME", name));
  DeleteResult result{found.front()->key(), std::nullopt, 0};
  auto owner = found.front()->deployment, ns = found.front()->namespace_;
  delete_pod(result.deleted);
  Changes changes;
  if (!owner.empty()) {
    result.replacement = add_replica(find_deployment(ns + "/" + owner));
    changes.pods.insert(*result.replacement);
  }
  pass(std::move(changes));
  result.sync_seconds = last_pass_seconds_;
  return result;
}

}  // namespace knl
