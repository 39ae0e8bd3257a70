// knl-test: a CNI plugin for knetlab's tests that fails on demand. In a
// chain it passes its prevResult on; its configuration chooses a failure:
//   "failOn": "ADD" | "DEL" | "CHECK"   the command that fails
//   "code", "msg", "details"            the error it prints (CNI spec's fields)
//   "hang": true                        sleeps instead of failing
//   "pod": "NAME"                       fails only for that pod (K8S_POD_NAME)
//   "log": "/path"                      appends "COMMAND CNI_CONTAINERID" per run
// Answers VERSION with 0.4.0 and 1.0.0.

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

int main() {
  const auto command = env("CNI_COMMAND");
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  auto conf = nlohmann::json::parse(input.empty() ? "{}" : input, nullptr, false);
  if (conf.is_discarded()) {
    std::cout << nlohmann::json{{"code", 6}, {"msg", "config is not JSON"}}.dump();
    return 1;
  }
  const std::string version = conf.value("cniVersion", "1.0.0");
  if (command == "VERSION") {
    std::cout << nlohmann::json{{"cniVersion", version}, {"supportedVersions", {"0.4.0", "1.0.0"}}}
                     .dump();
    return 0;
  }
  if (conf.contains("log")) {
    std::ofstream log(conf["log"].get<std::string>(), std::ios::app);
    log << command << " " << env("CNI_CONTAINERID") << " " << env("CNI_ARGS") << "\n";
  }
  const auto pod = conf.value("pod", "");
  if (conf.value("failOn", "") == command &&
      (pod.empty() || env("CNI_ARGS").find("K8S_POD_NAME=" + pod + ";") != std::string::npos)) {
    if (conf.value("hang", false))
      while (true) ::pause();
    std::cerr << "knl-test: failing " << command << " as configured\n";
    std::cout << nlohmann::json{{"cniVersion", version},
                                {"code", conf.value("code", 999)},
                                {"msg", conf.value("msg", "failure on demand")},
                                {"details", conf.value("details", "")}}
                     .dump();
    return 1;
  }
  if (command == "ADD")
    std::cout << (conf.contains("prevResult")
                      ? conf["prevResult"]
                      : nlohmann::json{{"cniVersion", version},
                                       {"interfaces", nlohmann::json::array()},
                                       {"ips", nlohmann::json::array()}})
                     .dump();
  return 0;
}
