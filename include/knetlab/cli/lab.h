#pragma once
// What the verbs share: where knetlab is installed, the run folder of each lab
// (/run/knetlab/<lab>: journal, state.json, pod files), and picking a lab.

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "knetlab/kernel/fd.h"
#include "knetlab/plan/plan.h"
#include "knetlab/realize/executor.h"
#include "knetlab/realize/record.h"
#include "knetlab/topology/gateway_api.h"

namespace knl::cli {

struct Install {
  std::string bin_dir;     // knetlab, pause, netexec
  std::string images_dir;  // images/<name>/image.toml
  std::string path_env;    // PATH inside every target: bin_dir first
};
Install locate_install();
RuntimeOptions runtime_options(const Install& install);

inline constexpr const char* kRunRoot = "/run/knetlab";
std::string lab_dir(const std::string& lab);
std::string journal_path(const std::string& lab);
std::string state_path(const std::string& lab);

/// A topology with what was planned from it.
struct PlannedLab {
  Topology topology;
  PlanContext context;
  Plan plan;
};
/// Parses, checks and plans `file`: every user error surfaces here.
PlannedLab plan_lab(const std::string& file, const Install& install);
Plan plan_file(const std::string& file, const Install& install);

/// An exclusive lock on one lab, held for the object's life.
class LabLock {
 public:
  explicit LabLock(const std::string& lab);
  /// Lets go early (a process that outlives the command must not hold it).
  void unlock() { fd_.reset(); }
  /// Removes the lock file, then lets go: the lab is gone, or never came up.
  void remove();

 private:
  std::string path_;
  Fd fd_;
};

/// Prints rows as aligned columns, like kubectl.
void print_table(const std::vector<std::vector<std::string>>& rows);

/// The control socket and events log of a lab.
std::string control_socket_path(const std::string& lab);
std::string events_path(const std::string& lab);
/// Sends `request` to the lab's supervisor and returns its result; its
/// refusal becomes a UserError (bad request) or a SystemError.
nlohmann::json ask(const std::string& lab, const Request& request);
/// Writes the lab's state record atomically (a new file renamed over the old).
void write_state(const std::string& lab, const LabRecord& record);
/// The record of `lab`; UserError when it is not deployed or unreadable.
LabRecord read_state(const std::string& lab);

/// The ingress controller service's load-balancer address, or "" when the
/// lab has none (yet).
std::string ingress_controller_address(const LabRecord& state);

/// The endpoints (ready pods' TCP addresses) of the service port an ingress
/// backend in namespace `ns` names; none when the service has none or is unknown.
std::vector<const EndpointRecord*> ingress_backend_endpoints(const LabRecord& state,
                                                             const std::string& ns,
                                                             const IngressBackend& backend);

/// The load-balancer address of gateway `g`'s service, or "" when it has
/// none (yet, or its class is not served).
std::string gateway_address(const LabRecord& state, const Gateway& g);

/// Whether a backendRef of a route in `ns` names a service of the lab with
/// that TCP port.
BackendExists backend_exists(const LabRecord& state);

/// The endpoints of the service port a route's backendRef in `ns` names.
std::vector<const EndpointRecord*> backend_ref_endpoints(const LabRecord& state,
                                                         const std::string& ns,
                                                         const BackendRef& backend);

/// Labs that have a run folder, sorted.
std::vector<std::string> deployed_labs();
/// `requested`, or the only deployed lab; UserError otherwise.
std::string pick_lab(const std::string& requested);

/// Takes the lab's lock and removes everything `lab` created, from its
/// journal. Returns false when the lab had nothing to remove.
bool destroy_lab(const std::string& lab);
/// The removal itself, for a caller that holds the lab's lock.
void remove_lab(const std::string& lab);

}  // namespace knl::cli
