// scale and delete: requests to the lab's controller (its supervisor), which
// changes the pods and re-syncs endpoints and rules before it answers.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/runtime/supervisor.h"
#include "knetlab/util/error.h"

namespace knl::cli {

namespace {

using nlohmann::json;

// "KIND/NAME" or "KIND/NAMESPACE/NAME" -> "NAME" or "NAMESPACE/NAME".
std::string object_name(const std::string& target, const std::string& kind) {
  auto slash = target.find('/');
  auto prefix = target.substr(0, slash);
  if (slash == std::string::npos || slash + 1 == target.size() ||
      (prefix != kind && !(kind == "deployment" && prefix == "deploy") &&
       !(kind == "pod" && prefix == "po")))
    throw UserError(
        fmt::format("\"{0}\" is not a {1}/NAME target; write {1}/NAME or "
                    "{1}/NAMESPACE/NAME",
                    target, kind));
  return target.substr(slash + 1);
}

}  // namespace

json ask(const std::string& lab, const Request& request) {
  auto answer = json::parse(ask_supervisor(control_socket_path(lab), request_json(request).dump()))
                    .get<Answer>();
  if (!answer.ok) {
    if (answer.user_error) throw UserError(answer.error);
    throw SystemError(answer.error, 0);
  }
  return answer.result;
}

int scale(const std::string& lab, const std::string& target, int replicas) {
  auto name = pick_lab(lab);
  auto result =
      ask(name, ScaleRequest{object_name(target, "deployment"), replicas}).get<ScaleResult>();
  for (const auto& pod : result.added) fmt::print("pod/{} created\n", pod);
  for (const auto& pod : result.removed) fmt::print("pod/{} deleted\n", pod);
  fmt::print("deployment.apps/{} scaled to {}\n", result.deployment, replicas);
  spdlog::debug("rules synced in {:.1f} ms", result.sync_seconds * 1000);
  return 0;
}

int remove(const std::string& lab, const std::string& target) {
  auto name = pick_lab(lab);
  auto result = ask(name, DeleteRequest{object_name(target, "pod")}).get<DeleteResult>();
  fmt::print("pod \"{}\" deleted\n", result.deleted);
  if (result.replacement) fmt::print("pod/{} created by its deployment\n", *result.replacement);
  return 0;
}

}  // namespace knl::cli
