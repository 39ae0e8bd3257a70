#include "probes.h"

#include "knetlab/util/error.h"

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <thread>

namespace knl::cli {

std::vector<std::pair<Protocol, int>> served_ports(const PodRecord& pod) {
  std::vector<std::pair<Protocol, int>> out;
  for (const auto& c : pod.containers) {
    if (c.argv.empty()) continue;
    const auto& program = c.argv[0];
    if (program.substr(program.rfind('/') + 1) != "netexec") continue;
    int http = 8080, udp = 8081;
    for (const auto& arg : c.argv) {
      if (arg.rfind("--http-port=", 0) == 0) http = std::stoi(arg.substr(12));
      if (arg.rfind("--udp-port=", 0) == 0) udp = std::stoi(arg.substr(11));
    }
    out.emplace_back(Protocol::tcp, http);
    if (udp != 0) out.emplace_back(Protocol::udp, udp);
  }
  return out;
}

ProgramCall hostname_call(const Install& install, const std::string& netns, Protocol protocol,
                          const std::string& address, double timeout) {
  std::vector<std::string> argv{install.bin_dir + "/netexec"};
  auto limit = fmt::format("--timeout={}", timeout);
  if (protocol == Protocol::udp)
    argv.insert(argv.end(), {"udp", address, "hostname", limit});
  else
    argv.insert(argv.end(), {"get", "http://" + address + "/hostname", limit});
  return {netns, argv, ""};
}

std::string hostname_answer(const ProgramResult& result) {
  auto text = result.output;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (result.status == 0) return "pod " + text;
  if (text.find("refused") != std::string::npos || text.find("unreachable") != std::string::npos)
    return "refused";
  if (text.find("timed out") != std::string::npos) return "timeout";
  return text.empty() ? fmt::format("exit {}", result.status) : text;
}

std::vector<ProgramResult> run_probes(const std::vector<ProgramCall>& calls, size_t at_once) {
  std::vector<ProgramResult> results(calls.size());
  std::atomic<size_t> next{0};
  std::vector<std::jthread> workers;
  for (size_t w = 0; w < std::min(at_once, calls.size()); ++w)
    workers.emplace_back([&] {
      for (size_t i; (i = next++) < calls.size();) {
        try {
          results[i] = run_program(calls[i].netns, calls[i].argv, calls[i].input);
        } catch (const std::exception& e) {
          results[i] = {127, e.what()};
        }
      }
    });
  workers.clear();
  return results;
}

ProbeResults run_probes_again(const std::vector<ProgramCall>& calls, size_t at_once,
                              const std::function<bool(size_t, const ProgramResult&)>& expected) {
  ProbeResults out{run_probes(calls, at_once)};
  std::vector<size_t> again;
  std::vector<ProgramCall> retry;
  for (size_t i = 0; i < calls.size(); ++i)
    if (!expected(i, out.results[i])) {
      again.push_back(i);
      retry.push_back(calls[i]);
    }
  auto second = run_probes(retry, at_once);
  for (size_t k = 0; k < again.size(); ++k) out.results[again[k]] = std::move(second[k]);
  out.asked_again = again.size();
  return out;
}

namespace {

std::string xml_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        // XML 1.0 allows no control characters but tab and newline.
        out += static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' ? '?' : c;
    }
  }
  return out;
}

}  // namespace

void write_junit(const std::string& path, const std::string& suite,
                 const std::vector<JunitCase>& cases) {
  size_t failures = 0;
  for (const auto& c : cases) failures += !c.failure.empty();
  std::string xml = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"{0}\" failures=\"{1}\">\n"
      "  <testsuite name=\"{2}\" tests=\"{0}\" failures=\"{1}\">\n",
      cases.size(), failures, xml_escaped(suite));
  for (const auto& c : cases) {
    xml += fmt::format("    <testcase classname=\"{}\" name=\"{}\"", xml_escaped(suite),
                       xml_escaped(c.name));
    xml += c.failure.empty()
               ? "/>\n"
               : fmt::format(">\n      <failure message=\"{0}\">{0}</failure>\n    </testcase>\n",
                             xml_escaped(c.failure));
  }
  xml += "  </testsuite>\n</testsuites>\n";
  std::ofstream out(path, std::ios::trunc);
  out << xml;
  if (!out) throw errno_error("write the JUnit report", path, "", errno);
}

}  // namespace knl::cli
