#include "knetlab/realize/routing.h"

#include <fmt/format.h>

#include <cctype>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "knetlab/util/error.h"

namespace knl {

namespace {

// The last lines of an instance's bgpd logs: a failed deploy removes them.
std::string log_tail(const FrrPlan& f) {
  std::string out;
  for (const char* name : {"bgpd.console.log", "bgpd.log"}) {
    std::ifstream in(f.dir + "/" + name);
    std::deque<std::string> lines;
    for (std::string line; std::getline(in, line);) {
      lines.push_back(line);
      if (lines.size() > 4) lines.pop_front();
    }
    for (const auto& line : lines) out += fmt::format("\n  {}: {}", name, line);
  }
  return out.empty() ? "\n  (bgpd wrote no log)" : out;
}

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

}  // namespace

std::string run_vtysh(Programs& programs, const FrrPlan& frr,
                      const std::vector<std::string>& commands) {
  std::vector<std::string> argv = {"vtysh", "--vty_socket", frr.dir};
  for (const auto& c : commands) argv.insert(argv.end(), {"-c", c});
  auto result = programs.run({frr.netns, argv, ""});
  if (result.status != 0)
    throw SystemError(fmt::format("vtysh in {} (netns {}): exit status {}: {}", frr.target,
                                  frr.netns, result.status, trimmed(result.output)),
                      EIO);
  return result.output;
}

std::map<std::string, std::string> bgp_sessions(Programs& programs, const FrrPlan& frr) {
  auto text = run_vtysh(programs, frr, {"show bgp neighbors json"});
  // vtysh may print a warning about its own configuration first.
  auto start = text.find('{');
  auto json =
      nlohmann::json::parse(start == std::string::npos ? "{}" : text.substr(start), nullptr, false);
  std::map<std::string, std::string> sessions;
  if (json.is_discarded()) return sessions;
  for (const auto& [peer, info] : json.items()) sessions[peer] = info.value("bgpState", "unknown");
  return sessions;
}

void wait_for_bgp(Kernel& kernel, Programs& programs, const Plan& plan,
                  const std::function<ExtraRoutes()>& extra,
                  std::chrono::steady_clock::time_point deadline) {
  struct Pending {
    const FrrPlan* frr;
    std::set<Ipv4Net> seen;                  // in the kernel already
    std::map<Ipv4Net, std::string> missing;  // this round's wanted routes not seen yet
    bool sessions_up = false;
  };
  std::vector<Pending> pending;
  for (const auto& f : plan.frr) pending.push_back({&f, {}, {}});
  for (;;) {
    const auto wanted = extra();
    bool done = true;
    for (auto& p : pending) {
      p.missing.clear();
      auto want = [&](const Ipv4Net& dst, const std::string& why) {
        if (!p.seen.count(dst)) p.missing.emplace(dst, why);
      };
      for (const auto& [dst, why] : p.frr->expected) want(dst, why);
      if (auto it = wanted.find(p.frr->target); it != wanted.end())
        for (const auto& [dst, why] : it->second) want(dst, why);
      if (!p.missing.empty())
        for (const auto& route : kernel.list_routes(p.frr->netns))
          if (p.missing.erase(route.dst)) p.seen.insert(route.dst);
      // Sessions are asked for once the routes are in: vtysh costs a process.
      if (p.missing.empty() && !p.sessions_up) {
        auto sessions = bgp_sessions(programs, *p.frr);
        p.sessions_up = sessions.size() == p.frr->peers.size() &&
                        std::all_of(sessions.begin(), sessions.end(),
                                    [](const auto& s) { return s.second == "Established"; });
      }
      done = done && p.missing.empty() && p.sessions_up;
    }
    if (done) return;
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (const auto& p : pending) {
    const auto& f = *p.frr;
    std::vector<std::string> states;
    std::map<std::string, std::string> sessions;
    try {
      sessions = bgp_sessions(programs, f);
    } catch (const SystemError& e) {
      throw SystemError(fmt::format("BGP did not converge: {} does not answer ({}); the end of "
                                    "its logs:{}",
                                    f.target, e.what(), log_tail(f)),
                        ETIMEDOUT);
    }
    for (const auto& peer : f.peers) {
      auto it = sessions.find(peer.ip.str());
      auto state = it == sessions.end() ? "not configured" : it->second;
      if (state != "Established")
        throw SystemError(
            fmt::format("BGP did not converge: {}'s session with {} ({}) is {}, not Established; "
                        "the end of its logs:{}",
                        f.target, peer.target, peer.ip.str(), state, log_tail(f)),
            ETIMEDOUT);
    }
    if (!p.missing.empty())
      throw SystemError(
          fmt::format("BGP did not converge: {} has no route to {} ({}) in its kernel; the end "
                      "of its logs:{}",
                      f.target, p.missing.begin()->first.str(), p.missing.begin()->second,
                      log_tail(f)),
          ETIMEDOUT);
  }
  throw SystemError("BGP did not converge in time", ETIMEDOUT);
}

}  // namespace knl
