#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace knl::test {

Result run(const std::vector<std::string>& argv, int timeout_seconds) {
  int out[2], err[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  Result result;
  if (rc != 0) {
    result.err = fmt::format("cannot run {}: {}", argv[0], std::strerror(rc));
    ::close(out[0]);
    ::close(err[0]);
    return result;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open = 2;
  bool killed = false;
  while (open > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left)) < 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      auto n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.status = killed ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

Result knetlab(const std::vector<std::string>& args, int timeout_seconds) {
  std::vector<std::string> argv = {std::string(KNL_BIN_DIR) + "/knetlab"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, timeout_seconds);
}

Result exec(const std::string& lab, const std::string& target,
            const std::vector<std::string>& command) {
  std::vector<std::string> args = {"exec", "--lab", lab, target, "--"};
  args.insert(args.end(), command.begin(), command.end());
  auto r = knetlab(args, 60);
  if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string source_file(const std::string& relative) {
  return read_text(std::string(KNL_SOURCE_DIR) + "/" + relative);
}

std::string host_network_snapshot() {
  std::string snapshot;
  for (const auto& command : std::vector<std::vector<std::string>>{
           {"ip", "-d", "link", "show"},
           {"ip", "addr", "show"},
           {"ip", "route", "show", "table", "all"},
           {"ip", "rule", "show"},
           {"ip", "neigh", "show", "nud", "permanent"},
           {"nft", "list", "ruleset"},
           {"iptables-save"},
           {"sysctl", "net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"}}) {
    auto r = run(command, 30);
    snapshot += "$";
    for (const auto& w : command) snapshot += " " + w;
    snapshot += "\n";
    std::istringstream lines(r.out);
    // Timestamps, lease countdowns and generated-by comments change by themselves.
    for (std::string line; std::getline(lines, line);)
      if (line.rfind('#', 0) != 0 && line.find("valid_lft") == std::string::npos)
        snapshot += line + "\n";
  }
  return snapshot;
}

::testing::AssertionResult nothing_left(const std::string& name) {
  auto prefix = "knl-" + name + "-";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec))
    if (entry.path().filename().string().rfind(prefix, 0) == 0)
      return ::testing::AssertionFailure() << "namespace left: " << entry.path();
  if (std::filesystem::exists("/run/knetlab/" + name))
    return ::testing::AssertionFailure() << "run folder left: /run/knetlab/" << name;
  if (std::filesystem::exists("/run/knetlab/." + name + ".lock"))
    return ::testing::AssertionFailure() << "lock file left: /run/knetlab/." << name << ".lock";
  auto mounts = read_text("/proc/self/mountinfo");
  if (mounts.find(prefix) != std::string::npos)
    return ::testing::AssertionFailure() << "mount left for " << prefix;
  if (mounts.find(" /run/knetlab/" + name + "/") != std::string::npos)
    return ::testing::AssertionFailure() << "mount left in /run/knetlab/" << name;
  // A daemon (FRR) whose command line names the lab's run folder.
  auto folder = "/run/knetlab/" + name + "/";
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    auto cmdline = read_text((entry.path() / "cmdline").string());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(folder) != std::string::npos)
      return ::testing::AssertionFailure() << "process left: " << entry.path() << " " << cmdline;
  }
  return ::testing::AssertionSuccess();
}

std::string Lab::curl(const std::vector<std::string>& args, const std::string& from) const {
  std::vector<std::string> argv = {"curl", "-s", "-m", "3"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = exec(from, argv);
  EXPECT_EQ(r.status, 0) << fmt::format("{}", fmt::join(argv, " ")) << ": " << r.err;
  return r.out;
}

std::map<std::string, int> Lab::curl_many(int n, const std::string& curl_args) const {
  auto r = exec("host/client",
                {"sh", "-c",
                 fmt::format("for i in $(seq {}); do curl -s -m 3 {}; echo; done", n, curl_args)});
  EXPECT_EQ(r.status, 0) << r.err;
  std::map<std::string, int> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) ++out[line];
  return out;
}

std::string renamed(std::string topology, const std::string& name) {
  // The lab's name is the first line that starts with `name = `.
  size_t at = topology.rfind("name = ", 0) == 0 ? 0 : topology.find("\nname = ");
  if (at == std::string::npos) return topology;
  if (at > 0) ++at;
  auto end = topology.find('\n', at);
  return topology.replace(at, end - at, fmt::format("name = \"{}\"", name));
}

pid_t deploy_in_background(const std::string& file) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 1), ::dup2(null, 2);
    auto program = std::string(KNL_BIN_DIR) + "/knetlab";
    ::execl(program.c_str(), "knetlab", "deploy", file.c_str(), nullptr);
    ::_exit(127);
  }
  return pid;
}

Lab::Lab(const std::string& name, std::string topology)
    : name_(name), file_(fmt::format("/tmp/knetlab-test-{}.toml", name)) {
  std::ofstream(file_) << renamed(std::move(topology), name);
  deploy_ = knetlab({"deploy", file_}, 300);
}

Lab::~Lab() {
  auto r = knetlab({"destroy", "--lab", name_}, 300);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(nothing_left(name_));
  std::filesystem::remove(file_);
}

nlohmann::json Lab::inspect() const {
  auto r = knetlab({"inspect", "--lab", name_, "--format", "json"});
  EXPECT_EQ(r.status, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

std::map<std::string, std::string> Lab::pod_ips() const {
  std::map<std::string, std::string> ips;
  auto state = inspect();
  for (const auto& pod : state["pods"])
    ips[pod["name"].get<std::string>()] = pod["ip"].get<std::string>();
  return ips;
}

}  // namespace knl::test
