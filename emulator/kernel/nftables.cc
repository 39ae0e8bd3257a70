#include "knetlab/kernel/nftables.h"

#include <fcntl.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "knetlab/kernel/netns.h"
#include "knetlab/util/error.h"
#include "library.h"

namespace knl {

namespace {

// libnftables, loaded the first time a lab needs it (library.h): most
// commands (destroy, get, exec, a lab without services) never use it.
struct Libnftables {
  decltype(&nft_ctx_new) ctx_new;
  decltype(&nft_ctx_free) ctx_free;
  decltype(&nft_ctx_buffer_output) buffer_output;
  decltype(&nft_ctx_buffer_error) buffer_error;
  decltype(&nft_ctx_get_output_buffer) get_output_buffer;
  decltype(&nft_ctx_get_error_buffer) get_error_buffer;
  decltype(&nft_run_cmd_from_buffer) run_cmd_from_buffer;
};

const Libnftables& libnftables() {
  static const Libnftables lib = [] {
    const Library library("libnftables.so.1", "libnftables1");
    Libnftables l;
    library.load(l.ctx_new, "nft_ctx_new");
    library.load(l.ctx_free, "nft_ctx_free");
    library.load(l.buffer_output, "nft_ctx_buffer_output");
    library.load(l.buffer_error, "nft_ctx_buffer_error");
    library.load(l.get_output_buffer, "nft_ctx_get_output_buffer");
    library.load(l.get_error_buffer, "nft_ctx_get_error_buffer");
    library.load(l.run_cmd_from_buffer, "nft_run_cmd_from_buffer");
    return l;
  }();
  return lib;
}

// What a refused run throws: nft's own message names the line.
SystemError refusal(const std::string& netns, nft_ctx* ctx) {
  return SystemError(fmt::format("load nftables rules in netns {}: {}", netns,
                                 libnftables().get_error_buffer(ctx)),
                     0);
}

}  // namespace

void to_json(nlohmann::json& j, const NftLoadResult& r) {
  j = {{"applied", r.applied}, {"error", r.error}};
}
void from_json(const nlohmann::json& j, NftLoadResult& r) {
  j.at("applied").get_to(r.applied);
  j.at("error").get_to(r.error);
}

namespace {

// In the child, whose only thread enters the namespace itself (the parent's
// namespace worker thread is not in it): runs the load and writes its
// NftLoadResult, as JSON, to `out`.
[[noreturn]] void load_in_child(const NftLoad& load, const NftTablesCopy* copy,
                                const std::vector<std::string>& transactions, int out) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  NftLoadResult result;
  try {
    Fd netns = open_netns(load.netns);
    if (::setns(netns.get(), CLONE_NEWNET) != 0)
      throw errno_error("enter", "network namespace", load.netns, errno);
    if (copy) {
      copy->into(load.netns, load.copy->elements);
      ++result.applied;
    }
    const auto& nft = libnftables();
    nft_ctx* ctx = transactions.empty() ? nullptr : nft.ctx_new(NFT_CTX_DEFAULT);
    if (!transactions.empty() && !ctx)
      throw SystemError(fmt::format("create nftables context in netns {}", load.netns), 0);
    if (ctx) nft.buffer_output(ctx), nft.buffer_error(ctx);
    for (const auto& t : transactions) {
      if (nft.run_cmd_from_buffer(ctx, t.c_str()) != 0) throw refusal(load.netns, ctx);
      ++result.applied;
    }
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  const auto text = nlohmann::json(result).dump();
  for (size_t at = 0; at < text.size();) {
    auto n = ::write(out, text.data() + at, text.size() - at);
    if (n <= 0) break;
    at += static_cast<size_t>(n);
  }
  ::_exit(0);
}

}  // namespace

std::vector<NftLoadResult> nft_load_in_children(const std::vector<NftLoad>& loads, size_t jobs) {
  libnftables();  // loaded once, before the forks, and its failure reported here
  struct Running {
    size_t index;
    Fd out;
    std::string text;
  };
  std::vector<NftLoadResult> results(loads.size());
  // Each copy's source is dumped once, here, before the children that copy
  // it: they inherit what was rendered.
  std::map<std::pair<std::string, std::vector<std::string>>, std::unique_ptr<NftTablesCopy>> copies;
  std::vector<const NftTablesCopy*> copy_of(loads.size());
  for (size_t i = 0; i < loads.size(); ++i) {
    if (!loads[i].copy) continue;
    auto& copy = copies[{loads[i].copy->from, loads[i].copy->tables}];
    try {
      if (!copy) copy = std::make_unique<NftTablesCopy>(loads[i].copy->from, loads[i].copy->tables);
      copy_of[i] = copy.get();
    } catch (const SystemError& e) {
      results[i].error = e.what();
    }
  }
  std::map<pid_t, Running> running;
  size_t next = 0;
  auto finish = [&](pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    auto& r = running.at(pid);
    auto& result = results[r.index];
    if (WIFSIGNALED(status))
      result.error = fmt::format(
          "load nftables rules in netns {}: the loading process was "
          "killed by signal {} ({})",
          loads[r.index].netns, WTERMSIG(status), ::strsignal(WTERMSIG(status)));
    else
      try {
        result = nlohmann::json::parse(r.text).get<NftLoadResult>();
      } catch (const std::exception& e) {
        result.error = fmt::format(
            "load nftables rules in netns {}: no result from the loading "
            "process (exit status {}): {}",
            loads[r.index].netns, WEXITSTATUS(status), e.what());
      }
    running.erase(pid);
  };
  while (next < loads.size() || !running.empty()) {
    while (next < loads.size() && running.size() < jobs) {
      if (loads[next].copy && !copy_of[next]) {
        ++next;  // its source could not be dumped: results[next] says why
        continue;
      }
      auto transactions = loads[next].transactions();
      int pipe[2];
      if (::pipe2(pipe, O_CLOEXEC) != 0)
        throw errno_error("create pipe", "nftables load", loads[next].netns, errno);
      Fd in(pipe[0]), out(pipe[1]);
      pid_t pid = ::fork();
      if (pid < 0) throw errno_error("fork", "nftables load", loads[next].netns, errno);
      if (pid == 0) load_in_child(loads[next], copy_of[next], transactions, out.get());
      running.emplace(pid, Running{next++, std::move(in), {}});
    }
    if (running.empty()) continue;
    std::vector<pollfd> fds;
    std::vector<pid_t> pids;
    for (const auto& [pid, r] : running) {
      fds.push_back({r.out.get(), POLLIN, 0});
      pids.push_back(pid);
    }
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR)
      throw errno_error("poll", "nftables loads", "", errno);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      auto& r = running.at(pids[i]);
      char buffer[4096];
      auto n = ::read(r.out.get(), buffer, sizeof buffer);
      if (n > 0)
        r.text.append(buffer, static_cast<size_t>(n));
      else if (n == 0 || errno != EINTR)
        finish(pids[i]);
    }
  }
  return results;
}

NftSession::NftSession(const std::string& netns) : netns_(netns), fd_(open_netns(netns)) {
  const auto& nft = libnftables();
  run_in_netns(fd_.get(), [&] { ctx_ = nft.ctx_new(NFT_CTX_DEFAULT); });
  if (!ctx_) throw SystemError(fmt::format("create nftables context in netns {}", netns), 0);
  nft.buffer_output(ctx_);
  nft.buffer_error(ctx_);
}

NftSession::~NftSession() {
  if (ctx_) run_in_netns(fd_.get(), [&] { libnftables().ctx_free(ctx_); });
}

void NftSession::run(const std::string& commands) {
  const auto& nft = libnftables();
  int rc = 0;
  run_in_netns(fd_.get(), [&] { rc = nft.run_cmd_from_buffer(ctx_, commands.c_str()); });
  if (rc != 0) throw refusal(netns_, ctx_);
}

std::string NftSession::list(const std::string& command) {
  run(command);
  return libnftables().get_output_buffer(ctx_);
}

}  // namespace knl
