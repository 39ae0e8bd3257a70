// validate, deploy and destroy.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <thread>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/kernel/kernel.h"
#include "knetlab/kernel/programs.h"
#include "knetlab/plan/dns.h"
#include "knetlab/realize/certificates.h"
#include "knetlab/realize/controller.h"
#include "knetlab/realize/requirements.h"
#include "knetlab/realize/routing.h"
#include "knetlab/runtime/supervisor.h"
#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl::cli {

namespace {

std::atomic<int> g_interrupted{0};

// Ctrl-C or SIGTERM during a deploy rolls it back instead of leaving half a lab.
class InterruptGuard {
 public:
  InterruptGuard() {
    struct sigaction sa {};
    sa.sa_handler = [](int sig) { g_interrupted = sig; };
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~InterruptGuard() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Serves the command line's requests to the lab's controller.
class ControllerHooks : public SupervisorHooks {
 public:
  explicit ControllerHooks(Controller& controller) : controller_(controller) {}
  void exited(int pid, int status) override { controller_.exited(pid, status); }
  void exits_reaped() override { controller_.settle(); }
  void tick() override { controller_.tick(); }
  std::string request(const std::string& line) override {
    Answer answer;
    try {
      auto request = parse_request(nlohmann::json::parse(line));
      // destroy: from now on only reap (see SupervisorHooks::quiesced), and
      // with `stop`, kill the lab's processes first: as their parent, with
      // one kill(2) each, where destroy opens a pidfd and reads
      // /proc/PID/stat for each.
      if (const auto* quiesce = std::get_if<QuiesceRequest>(&request)) {
        quiesced_ = true;
        QuiesceResult result;
        if (quiesce->stop) result.stopped = stop_children(std::chrono::milliseconds(1500));
        answer = {true, false, "", result};
      } else {
        answer = {true, false, "", controller_.request(request)};
      }
    } catch (const UserError& e) {
      answer = {false, true, e.what(), nullptr};
    } catch (const std::exception& e) {
      answer = {false, false, e.what(), nullptr};
    }
    return nlohmann::json(answer).dump();
  }
  bool quiesced() const override { return quiesced_; }

 private:
  Controller& controller_;
  bool quiesced_ = false;
};

// In the deploy worker: build the lab, report the outcome on `result_fd` and,
// on success, stay behind as the lab's supervisor (never returns then).
// Returns the exit status of a failure.
int run_deploy(PlannedLab lab, const Install& install, bool quiet,
               std::chrono::steady_clock::time_point start, LabLock& lock, int result_fd) {
  Plan& plan = lab.plan;
  // SIGCHLD stays blocked in every thread this process will have, so that the
  // supervisor is the one that sees it.
  sigset_t children;
  sigemptyset(&children);
  sigaddset(&children, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &children, nullptr);
  std::unique_ptr<Controller> controller;
  std::optional<Journal> journal;
  std::unique_ptr<Kernel> kernel;
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<Programs> programs;
  Fd control;
  // The "deploying" record, for get and inspect while the lab is built
  // (destroy works from the journal), is written by a thread of its own
  // meanwhile, so that building starts at once.
  std::jthread deploying;
  std::exception_ptr deploying_failure;
  try {
    // With cni = "external" the executor sets the pods' addresses meanwhile:
    // the record is made from a copy then.
    std::optional<Plan> copy;
    if (plan.network.cni == Cni::external) copy = plan;
    deploying = std::jthread([&, copy = std::move(copy)] {
      try {
        write_state(plan.lab, make_record(copy ? *copy : plan, {}, LabPhase::deploying));
      } catch (...) {
        deploying_failure = std::current_exception();
      }
    });
    become_subreaper();
    journal = Journal::open_file(journal_path(plan.lab));
    journal->record({JournalEntry::Kind::process,
                     kSupervisorEntry,
                     {::getpid(), process_start_time(::getpid())}});
    kernel = make_netlink_kernel();
    runtime = make_process_runtime(runtime_options(install));
    programs = make_programs();
    bool tty = !quiet && ::isatty(STDERR_FILENO);
    auto phase_start = std::chrono::steady_clock::now();
    ExecutorOptions options;
    options.progress = [&](std::string_view phase, size_t done, size_t total) {
      if (g_interrupted)
        throw UserError(
            fmt::format("deploy interrupted by signal {}; rolled back", g_interrupted.load()));
      if (tty) fmt::print(stderr, "\r\033[K  {:<16} {:>6}/{}", phase, done, total);
      if (tty && done == total) fmt::print(stderr, "\n");
      if (done == total) {
        spdlog::debug("{}: {} in {:.3f} s", phase, total, seconds_since(phase_start));
        phase_start = std::chrono::steady_clock::now();
      }
    };
    spdlog::info("deploying lab \"{}\": {} nodes, {} pods, {} services, {} hosts (cni {})",
                 plan.lab, plan.nodes.size(), plan.pods.size(), plan.services.size(),
                 plan.hosts.size(), plan.network.cni);
    std::map<std::string, PodProcesses> pods;
    {
      InterruptGuard guard;
      make_certificates(*programs, plan);
      pods = Executor(*kernel, *runtime, *programs, *journal, options).deploy(plan);
      ControllerOptions copts;
      const auto lab_name = plan.lab;
      copts.publish = [lab_name](const LabState& state) {
        auto ready = state.ready_pods();
        write_state(lab_name, make_record(state.plan, state.processes, LabPhase::ready,
                                          &state.endpoints, &ready));
      };
      copts.event = [lab_name](const std::string& text) {
        append_event(events_path(lab_name), text);
      };
      LabState state{std::move(lab.topology), std::move(lab.context), plan, {}, pods, {}, {}};
      controller = std::make_unique<Controller>(std::move(state), *kernel, *runtime, *programs,
                                                *journal, copts);
      try {
        // Before the "ready" record, which it must not overwrite.
        deploying.join();
        if (deploying_failure) std::rethrow_exception(deploying_failure);
        controller->start();
        if (!plan.frr.empty()) {
          auto bgp_start = std::chrono::steady_clock::now();
          size_t sessions = 0;
          for (const auto& f : plan.frr) sessions += f.peers.size();
          controller->wait_for_bgp(bgp_start + std::chrono::seconds(30));
          spdlog::info(
              "BGP converged: {} FRR instances, {} session ends Established, every "
              "expected route in the kernel ({:.3f} s after the pods were up)",
              plan.frr.size(), sessions, seconds_since(bgp_start));
        }
      } catch (...) {
        Executor::undo(journal->entries(), *kernel, *runtime, *programs);
        throw;
      }
      control = listen_control_socket(control_socket_path(plan.lab));
    }
    ::prctl(PR_SET_PDEATHSIG, 0);
    lock.unlock();
    spdlog::info("lab \"{}\" is ready in {:.3f} s", plan.lab, seconds_since(start));
  } catch (const std::exception& e) {
    // The executor undid its work; the run folder and the lock file go too.
    if (deploying.joinable()) deploying.join();
    std::error_code ec;
    std::filesystem::remove_all(lab_dir(plan.lab), ec);
    lock.remove();
    fmt::print(stderr, "error: {}\n", e.what());
    return dynamic_cast<const UserError*>(&e) ? 1 : 2;
  }
  if (!quiet) {
    fmt::print("Lab \"{}\" is up: {} nodes, {} pods, {} services, {} hosts.\n", plan.lab,
               plan.nodes.size(), plan.pods.size(), plan.services.size(), plan.hosts.size());
    fmt::print("  knetlab get pods -o wide                     # where every pod runs\n");
    if (!plan.services.empty())
      fmt::print(
          "  knetlab get services                         # ClusterIPs, NodePorts, LB IPs\n");
    if (!plan.pods.empty())
      fmt::print("  knetlab exec pod/{} -- ip addr              # a command inside a pod\n",
                 plan.pods.front().name);
    fmt::print("  knetlab exec node/{} -- ip route   # a node's routes\n", plan.nodes.front().name);
    if (!plan.frr.empty())
      fmt::print("  knetlab vtysh {} -c \"show bgp summary\"   # FRR's BGP sessions\n",
                 plan.frr.front().target);
    for (const auto& r : plan.routers)
      if (r.name == "spine")
        fmt::print("  knetlab exec router/spine -- ip route     # the fabric's routes\n");
    fmt::print("  knetlab destroy --lab {}                # remove it all\n", plan.lab);
  }
  // Success: tell the command, then let go of everything it shares.
  std::fflush(stdout);
  std::fflush(stderr);
  int code = 0;
  [[maybe_unused]] auto n = ::write(result_fd, &code, sizeof code);
  ::close(result_fd);
  ControllerHooks hooks(*controller);
  run_supervisor(events_path(plan.lab), std::move(control), hooks);
}

// In the deploy worker: plan the lab, take its lock and build it (see
// run_deploy). Returns the exit status when it does not stay behind.
int plan_and_deploy(const std::string& file, bool quiet,
                    std::chrono::steady_clock::time_point start, int result_fd) {
  auto install = locate_install();
  auto lab = plan_lab(file, install);
  Plan& plan = lab.plan;
  require_machine_support(plan, file);
  LabLock lock(plan.lab);
  if (std::filesystem::exists(lab_dir(plan.lab))) {
    // A deploy that died before its "deploying" record left none.
    std::optional<LabRecord> state;
    if (std::filesystem::exists(state_path(plan.lab))) state = read_state(plan.lab);
    if (state && state->phase == LabPhase::ready) {
      if (desired_part(*state) == desired_part(make_record(plan, {}, LabPhase::ready))) {
        spdlog::info("lab \"{}\" is already deployed and matches {}; nothing to do", plan.lab,
                     file);
        return 0;
      }
      // A running lab is reconciled by its supervisor, which holds it.
      auto result =
          ask(plan.lab, ApplyRequest{std::filesystem::absolute(file).string()}).get<ApplyResult>();
      std::vector<std::string> added;
      for (const auto& [kind, names] :
           {std::pair{"node", &result.nodes}, std::pair{"host", &result.hosts},
            std::pair{"router", &result.routers}, std::pair{"pod", &result.pods}})
        for (const auto& name : *names) added.push_back(fmt::format("{}/{}", kind, name));
      std::vector<std::string> changes;
      if (!added.empty()) changes.push_back(fmt::format("added {}", fmt::join(added, ", ")));
      if (!result.relabelled.empty())
        changes.push_back(fmt::format("relabelled pod/{}", fmt::join(result.relabelled, ", pod/")));
      if (result.policies) changes.push_back("network policies changed");
      if (result.ingresses) changes.push_back("ingresses changed");
      if (changes.empty())
        spdlog::info("lab \"{}\" already matches {}; nothing to do", plan.lab, file);
      else
        spdlog::info("lab \"{}\" reconciled to {} in {:.3f} s: {}", plan.lab, file, result.seconds,
                     fmt::join(changes, "; "));
      return 0;
    }
    spdlog::warn("lab \"{}\" has leftovers of an interrupted deploy; removing them first",
                 plan.lab);
    remove_lab(plan.lab);
  }
  std::filesystem::create_directories(lab_dir(plan.lab));
  return run_deploy(std::move(lab), install, quiet, start, lock, result_fd);
}

}  // namespace

int validate(const std::string& file) {
  auto plan = plan_file(file, locate_install());
  fmt::print("{}: valid: lab \"{}\", {} nodes, {} pods, {} hosts, cni {}\n", file, plan.lab,
             plan.nodes.size(), plan.pods.size(), plan.hosts.size(), plan.network.cni);
  return 0;
}

int deploy(const std::string& file, bool quiet) {
  auto start = std::chrono::steady_clock::now();
  // The work runs in a child that stays behind as the lab's supervisor: every
  // sandbox and container descends from it, so it reaps them (see supervisor.h).
  // It is forked before the topology is read: a fork copies the page tables
  // of all the command has touched, and each page either process writes
  // afterwards is copied once more.
  int result[2];
  if (::pipe2(result, O_CLOEXEC) != 0) throw errno_error("create pipe", "deploy", "", errno);
  std::fflush(stdout);
  const pid_t command = ::getpid();
  pid_t worker = ::fork();
  if (worker < 0) throw errno_error("fork", "deploy worker", "", errno);
  if (worker == 0) {
    // A SIGKILL of the command takes the worker with it; destroy then works
    // from the journal.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != command) ::_exit(2);
    ::close(result[0]);
    int code = 2;
    try {
      code = plan_and_deploy(file, quiet, start, result[1]);
    } catch (const std::exception& e) {
      fmt::print(stderr, "error: {}\n", e.what());
      code = dynamic_cast<const UserError*>(&e) ? 1 : 2;
    }
    std::fflush(stdout);
    [[maybe_unused]] auto n = ::write(result[1], &code, sizeof code);
    ::_exit(code);
  }
  ::close(result[1]);
  struct sigaction ignore {
  }, old{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old);  // the worker rolls back on Ctrl-C and reports
  int code = -1;
  while (::read(result[0], &code, sizeof code) < 0 && errno == EINTR) {
  }
  ::close(result[0]);
  ::sigaction(SIGINT, &old, nullptr);
  if (code < 0)
    throw SystemError(fmt::format("the deploy worker of {} died; `knetlab destroy {}` removes what "
                                  "it built",
                                  file, file),
                      0);
  if (code != 0) ::waitpid(worker, nullptr, 0);
  return code;
}

int destroy(const std::string& file, const std::string& lab, bool all) {
  std::vector<std::string> labs;
  if (all) {
    labs = deployed_labs();
  } else if (!file.empty()) {
    labs.push_back(parse_topology_file(file).name);
  } else if (!lab.empty()) {
    labs.push_back(lab);
  } else {
    throw UserError("destroy needs a topology FILE, --lab NAME or --all");
  }
  for (const auto& name : labs) {
    auto start = std::chrono::steady_clock::now();
    if (destroy_lab(name))
      spdlog::info("lab \"{}\" destroyed in {:.3f} s", name, seconds_since(start));
    else
      spdlog::info("lab \"{}\" is not deployed; nothing to destroy", name);
  }
  return 0;
}

}  // namespace knl::cli
