// knetlab: a Kubernetes cluster network emulator on Linux namespaces.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "knetlab/cli/commands.h"
#include "knetlab/util/error.h"

namespace {

void setup_logging(int verbosity, bool quiet) {
  auto logger = spdlog::stderr_color_mt("knetlab");
  logger->set_pattern("%^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(quiet            ? spdlog::level::err
                    : verbosity >= 2 ? spdlog::level::trace
                    : verbosity == 1 ? spdlog::level::debug
                                     : spdlog::level::info);
}

// A lab keeps one namespace fd and one netlink socket per namespace open.
void raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"knetlab: a Kubernetes cluster network on Linux namespaces, with real packets"};
  app.require_subcommand(1);
  int verbosity = 0;
  bool quiet = false;
  knl::cli::ListOptions list;
  app.add_flag("-v,--verbose", verbosity, "more logs (-vv: all)");
  app.add_flag("-q,--quiet", quiet, "only errors");
  raise_fd_limit();
  // A program the lab runs that stops reading its input (iptables-restore
  // refusing a ruleset) makes the write fail with EPIPE, not kill knetlab.
  ::signal(SIGPIPE, SIG_IGN);

  std::string file, lab, kind, name, target, container, output;
  bool all = false;
  std::vector<std::string> command;

  auto* validate =
      app.add_subcommand("validate", "check a topology file without touching the kernel");
  validate->add_option("FILE", file, "topology file")->required();

  auto* deploy = app.add_subcommand(
      "deploy", "build the lab described by FILE (a running lab: add what FILE adds)");
  deploy->add_option("FILE", file, "topology file")->required();
  auto* apply = app.add_subcommand(
      "apply",
      "reconcile a running lab to FILE: add the nodes, hosts, racks and pods it adds, relabel "
      "pods, change network policies");
  apply->add_option("FILE", file, "topology file")->required();

  auto* destroy = app.add_subcommand("destroy", "remove everything a lab created");
  destroy->add_option("FILE", file, "topology file of the lab");
  destroy->add_option("--lab", lab, "lab name");
  destroy->add_flag("--all", all, "every deployed lab");

  auto add_listing = [&](CLI::App* sub) {
    sub->add_option("--lab", list.lab, "lab name (may be left out when one lab runs)");
    sub->add_option("--format", list.format, "table or json")
        ->check(CLI::IsMember({"table", "json"}));
  };
  auto* inspect = app.add_subcommand("inspect", "nodes, pods and hosts of a lab");
  add_listing(inspect);

  auto* get = app.add_subcommand(
      "get", "kubectl-like listing: nodes, pods, services, endpoints, networkpolicies, hosts");
  get->add_option("KIND", kind,
                  "nodes | pods | services | endpoints | networkpolicies | hosts | routers")
      ->required();
  get->add_option("NAME", name, "one object");
  add_listing(get);
  get->add_option("-o,--output", output, "wide or json")->check(CLI::IsMember({"wide", "json"}));
  get->add_option("-n,--namespace", list.namespace_,
                  "only this namespace's pods, services and policies");
  get->add_flag("-A,--all-namespaces", list.all_namespaces,
                "every namespace, the cluster's own (kube-system) too");

  auto* describe = app.add_subcommand("describe", "one pod, service or network policy in detail");
  describe
      ->add_option("TARGET", target,
                   "pod/NAME, service/NAME or networkpolicy/NAME (KIND/NAMESPACE/NAME too)")
      ->required();
  describe->add_option("--lab", list.lab, "lab name (may be left out when one lab runs)");
  describe->add_option("-n,--namespace", list.namespace_, "the object's namespace");

  auto* exec = app.add_subcommand("exec", "run a command inside a node, pod, host or router");
  exec->add_option("TARGET", target,
                   "node/NAME, pod/NAME, pod/NAMESPACE/NAME, host/NAME, router/NAME")
      ->required();
  exec->add_option("-c,--container", container, "one container of the pod");
  exec->add_option("--lab", lab, "lab name (may be left out when one lab runs)");
  exec->add_option("COMMAND", command, "the command, after --")->required();

  std::vector<std::string> vtysh_commands;
  auto* vtysh = app.add_subcommand("vtysh", "FRR's shell of a node or router");
  vtysh->add_option("TARGET", target, "node/NAME or router/NAME")->required();
  vtysh->add_option("-c,--command", vtysh_commands, "run this command and exit (repeatable)");
  vtysh->add_option("--lab", lab, "lab name (may be left out when one lab runs)");

  int replicas = -1;
  auto* scale = app.add_subcommand("scale", "change a deployment's replicas; endpoints follow");
  scale->add_option("TARGET", target, "deployment/NAME or deployment/NAMESPACE/NAME")->required();
  scale->add_option("--replicas", replicas, "the number of pods")->required();
  scale->add_option("--lab", lab, "lab name (may be left out when one lab runs)");
  auto* remove = app.add_subcommand("delete", "delete a pod (its deployment re-creates it)");
  remove->add_option("TARGET", target, "pod/NAME or pod/NAMESPACE/NAME")->required();
  remove->add_option("--lab", lab, "lab name (may be left out when one lab runs)");
  std::string cni_action;
  auto* cni = app.add_subcommand(
      "cni",
      "cni = \"external\": a pod's CNI attachment (check: the chain's CHECK; result: its "
      "cached ADD result)");
  cni->add_option("ACTION", cni_action, "check or result")
      ->required()
      ->check(CLI::IsMember({"check", "result"}));
  cni->add_option("TARGET", target, "pod/NAME or pod/NAMESPACE/NAME")->required();
  cni->add_option("--lab", lab, "lab name (may be left out when one lab runs)");
  knl::cli::CheckOptions check_options;
  auto* check = app.add_subcommand(
      "check", "probe services with real packets and compare with what Kubernetes would give");
  check->add_option("--lab", check_options.lab, "lab name (may be left out when one lab runs)");
  check->add_flag("--policies", check_options.policies,
                  "every pod pair on every port the policies name: the network-policy truth "
                  "tables");
  check->add_option("--junit", check_options.junit,
                    "also write every probe to this file as a JUnit XML report (for CI)");
  check->add_option("--format", check_options.format, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 1;
  }
  setup_logging(verbosity, quiet);
  try {
    if (*validate) return knl::cli::validate(file);
    if (*deploy || *apply) return knl::cli::deploy(file, quiet);
    if (*destroy) return knl::cli::destroy(file, lab, all);
    if (*inspect) return knl::cli::inspect(list);
    if (*get) {
      if (!output.empty()) list.format = output;
      return knl::cli::get(kind, name, list);
    }
    if (*exec) return knl::cli::exec(lab, target, container, command);
    if (*vtysh) return knl::cli::vtysh(lab, target, vtysh_commands);
    if (*scale) return knl::cli::scale(lab, target, replicas);
    if (*remove) return knl::cli::remove(lab, target);
    if (*check) return knl::cli::check(check_options);
    if (*cni) return knl::cli::cni(lab, cni_action, target);
    if (*describe) return knl::cli::describe(target, list);
  } catch (const knl::UserError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const knl::SystemError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  return 1;
}
