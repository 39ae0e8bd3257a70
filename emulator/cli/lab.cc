#include "knetlab/cli/lab.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "knetlab/kernel/kernel.h"
#include "knetlab/plan/dns.h"
#include "knetlab/plan/images.h"
#include "knetlab/plan/ingress.h"
#include "knetlab/runtime/supervisor.h"
#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl::cli {

namespace fs = std::filesystem;
using nlohmann::json;

Install locate_install() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw errno_error("find own program", "/proc/self/exe", "", ec.value());
  Install install;
  install.bin_dir = exe.parent_path().string();
  install.images_dir = (exe.parent_path().parent_path() / "images").string();
  // Images of one's own (a build of a DNS server, a test's broken one).
  if (const char* images = std::getenv("KNL_IMAGES_DIR")) install.images_dir = images;
  install.path_env =
      install.bin_dir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  return install;
}

RuntimeOptions runtime_options(const Install& install) {
  return {install.bin_dir + "/pause", install.path_env};
}

std::string ingress_controller_address(const LabRecord& state) {
  for (const auto& s : state.services)
    if (s.namespace_ == kIngressNamespace && s.name == kIngressController && s.load_balancer_ip)
      return s.load_balancer_ip->str();
  return "";
}

std::vector<const EndpointRecord*> ingress_backend_endpoints(const LabRecord& state,
                                                             const std::string& ns,
                                                             const IngressBackend& backend) {
  std::vector<const EndpointRecord*> out;
  for (const auto& s : state.services) {
    if (s.namespace_ != ns || s.name != backend.service) continue;
    for (const auto& p : s.ports)
      if (p.protocol == Protocol::tcp &&
          (backend.port_name.empty() ? p.port == backend.port : p.name == backend.port_name))
        for (const auto& e : s.endpoints)
          if (e.port_name == p.name && e.protocol == Protocol::tcp) out.push_back(&e);
  }
  return out;
}

std::string gateway_address(const LabRecord& state, const Gateway& g) {
  if (!g.served()) return "";
  for (const auto& s : state.services)
    if (s.namespace_ == g.namespace_ && s.name == gateway_deployment_name(g) && s.load_balancer_ip)
      return s.load_balancer_ip->str();
  return "";
}

BackendExists backend_exists(const LabRecord& state) {
  return [&state](const std::string& ns, const BackendRef& b) {
    return std::any_of(state.services.begin(), state.services.end(), [&](const ServiceRecord& s) {
      return s.namespace_ == ns && s.name == b.name &&
             std::any_of(s.ports.begin(), s.ports.end(), [&](const auto& p) {
               return p.protocol == Protocol::tcp && p.port == b.port;
             });
    });
  };
}

std::vector<const EndpointRecord*> backend_ref_endpoints(const LabRecord& state,
                                                         const std::string& ns,
                                                         const BackendRef& backend) {
  return ingress_backend_endpoints(state, ns, {backend.name, backend.port, ""});
}

std::string lab_dir(const std::string& lab) {
  return std::string(kRunRoot) + "/" + lab;
}
std::string journal_path(const std::string& lab) {
  return lab_dir(lab) + "/journal";
}
std::string state_path(const std::string& lab) {
  return lab_dir(lab) + "/state.json";
}

PlannedLab plan_lab(const std::string& file, const Install& install) {
  auto topology = parse_topology_file(file);
  check_buildable(topology);
  for (const auto& w : topology.warnings)
    fmt::print(stderr, "{}: warning: {}\n", w.where.str(), w.message);
  add_cluster_objects(topology);
  PlanContext context{kRunRoot, install.bin_dir,
                      load_image_catalog(install.images_dir, install.bin_dir)};
  // FRR built from source lives elsewhere (/usr/local/sbin, say).
  if (const char* frr = std::getenv("KNL_FRR_DIR")) context.frr_dir = frr;
  auto plan = make_plan(topology, context);
  return {std::move(topology), std::move(context), std::move(plan)};
}

Plan plan_file(const std::string& file, const Install& install) {
  return plan_lab(file, install).plan;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i)
      line += i + 1 == row.size() ? row[i] : fmt::format("{:<{}}   ", row[i], widths[i]);
    fmt::print("{}\n", line);
  }
}

std::string control_socket_path(const std::string& lab) {
  return lab_dir(lab) + "/control.sock";
}
std::string events_path(const std::string& lab) {
  return lab_dir(lab) + "/events.log";
}

LabLock::LabLock(const std::string& lab) : path_(fmt::format("{}/.{}.lock", kRunRoot, lab)) {
  fs::create_directories(kRunRoot);
  // A holder that was just killed (a deploy's worker dies with its command)
  // lets go once its exit has closed its files, a few milliseconds later; a
  // command still at work after 2 s is not waited for.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  // The holder removes the file when the lab goes: a lock taken on a file
  // that was removed meanwhile is no lock, so take the new one.
  for (int replaced = 0; replaced < 10;) {
    fd_.reset(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd_) throw errno_error("open lock", path_, "", errno);
    if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) throw errno_error("lock", path_, "", errno);
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    struct stat held, named;
    if (::fstat(fd_.get(), &held) == 0 && ::stat(path_.c_str(), &named) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino)
      return;
    ++replaced;
  }
  throw UserError(
      fmt::format("lab \"{}\" is busy: another knetlab command is deploying or "
                  "destroying it; wait for it to finish",
                  lab));
}

void LabLock::remove() {
  ::unlink(path_.c_str());
  fd_.reset();
}

void write_state(const std::string& lab, const LabRecord& record) {
  auto path = state_path(lab);
  auto tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    write_record(out, record);
    if (!out) throw errno_error("write state", tmp, "", errno);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw errno_error("write state", path, "", errno);
}

LabRecord read_state(const std::string& lab) {
  std::ifstream in(state_path(lab));
  if (!in)
    throw UserError(
        fmt::format("lab \"{}\" is not deployed (no {}); deploy it with "
                    "`knetlab deploy FILE`",
                    lab, state_path(lab)));
  try {
    return json::parse(in).get<LabRecord>();
  } catch (const std::exception& e) {
    throw UserError(
        fmt::format("{}: unreadable state record ({}); `knetlab destroy --lab {}` "
                    "removes the lab",
                    state_path(lab), e.what(), lab));
  }
}

std::vector<std::string> deployed_labs() {
  std::vector<std::string> labs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kRunRoot, ec))
    if (entry.is_directory() && fs::exists(entry.path() / "journal"))
      labs.push_back(entry.path().filename().string());
  std::sort(labs.begin(), labs.end());
  return labs;
}

std::string pick_lab(const std::string& requested) {
  if (!requested.empty()) return requested;
  auto labs = deployed_labs();
  if (labs.size() == 1) return labs.front();
  if (labs.empty()) throw UserError("no lab is deployed; deploy one with `knetlab deploy FILE`");
  throw UserError(fmt::format("{} labs are deployed ({}); pick one with --lab NAME", labs.size(),
                              fmt::join(labs, ", ")));
}

bool destroy_lab(const std::string& lab) {
  LabLock lock(lab);
  bool existed = fs::exists(lab_dir(lab));
  if (existed) remove_lab(lab);
  lock.remove();
  return existed;
}

void remove_lab(const std::string& lab) {
  auto dir = lab_dir(lab);
  auto entries = Journal::read_file(journal_path(lab));
  // A running supervisor stops reacting to the exits to come and stops the
  // lab's processes, its children; what one that is gone or does not answer
  // in time leaves is killed with the rest below.
  try {
    ask_supervisor(control_socket_path(lab), request_json(QuiesceRequest{true}).dump(), 2000);
  } catch (const std::exception&) {
  }
  auto kernel = make_netlink_kernel();
  auto runtime = make_process_runtime(runtime_options(locate_install()));
  auto programs = make_programs();
  Executor::undo(entries, *kernel, *runtime, *programs);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) throw errno_error("remove", dir, "", ec.value());
}

}  // namespace knl::cli
