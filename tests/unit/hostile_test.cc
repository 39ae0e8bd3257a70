// Hostile and broken topology files: every user string that reaches an
// nftables or iptables script, a file path, nginx's configuration or a
// resolv.conf is refused by the parser unless it has its Kubernetes syntax
// (a test per sink), and a seeded fuzzer runs thousands of mutated example
// labs through `knetlab validate`, which must end with 0 or 1, a located
// message and a short output.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {
namespace {

// Values no name, label, path or resolver option may take, as TOML string
// bodies (escaped).
const std::vector<std::string> kHostile = {
    "a\\\"b", "a b",    "a\\nb", "$(touch x)", "`id`",      "a;b", "../x",
    "a/b",    "a\\\\b", "A",     "é",          "a\\u0000b", "{x}", std::string(70000, 'a')};

// A lab whose every string passes; a sink's field is replaced by `{}`.
constexpr const char* kBase = R"~(
name = "LABNAME"
[[nodes]]
name = "NODENAME"
[[namespaces]]
name = "NSNAME"
labels = { LABELKEY = "LABELVALUE" }
[[deployments]]
name = "DEPLOYNAME"
namespace = "NSNAME"
labels = { app = "web" }
[deployments.dnsConfig]
searches = ["SEARCH"]
options = ["OPTION"]
[[deployments.containers]]
name = "CONTAINERNAME"
image = "IMAGENAME"
ports = [{ name = "CONTPORT", containerPort = 8080 }]
[[services]]
name = "SVCNAME"
namespace = "NSNAME"
selector = { app = "web" }
ports = [{ name = "PORTNAME", port = 80, targetPort = "TARGETPORT" }]
[[networkPolicies]]
name = "POLICYNAME"
namespace = "NSNAME"
podSelector = { app = "web" }
[[ingresses]]
name = "INGRESSNAME"
namespace = "NSNAME"
annotations = { "nginx.ingress.kubernetes.io/canary-by-header" = "HEADER", "nginx.ingress.kubernetes.io/session-cookie-name" = "COOKIE" }
[[ingresses.rules]]
host = "HOST"
paths = [{ path = "PATH", pathType = "Prefix", service = "SVCNAME", port = 80 }]
[[gateways]]
name = "GWNAME"
namespace = "NSNAME"
listeners = [{ name = "LSNNAME", port = 80, hostname = "GWLISTENDOMAIN" }]
[[httpRoutes]]
name = "ROUTENAME"
namespace = "NSNAME"
parentRefs = ["GWNAME"]
hostnames = ["ROUTEDOMAIN"]
[[httpRoutes.rules]]
matches = [{ path = { value = "MATCHURI" }, headers = [{ name = "MATCHHDR", value = "MATCHVAL" }], queryParams = [{ name = "QRYNAME", value = "QRYVAL" }] }]
filters = [{ type = "RequestHeaderModifier", set = [{ name = "SETHDR", value = "SETVAL" }] }, { type = "URLRewrite", path = { type = "ReplaceFullPath", value = "REWRITEURI" } }]
backendRefs = [{ name = "SVCNAME", port = 80 }]
)~";

const std::map<std::string, std::string> kGood = {{"LABNAME", "lab"},
                                                  {"NODENAME", "n1"},
                                                  {"NSNAME", "team"},
                                                  {"LABELKEY", "tier"},
                                                  {"LABELVALUE", "web"},
                                                  {"DEPLOYNAME", "web"},
                                                  {"SEARCH", "example.com"},
                                                  {"OPTION", "ndots:2"},
                                                  {"CONTAINERNAME", "c"},
                                                  {"IMAGENAME", "netexec"},
                                                  {"CONTPORT", "http"},
                                                  {"SVCNAME", "web"},
                                                  {"PORTNAME", "http"},
                                                  {"TARGETPORT", "http"},
                                                  {"POLICYNAME", "deny"},
                                                  {"INGRESSNAME", "web"},
                                                  {"HEADER", "X-Canary"},
                                                  {"COOKIE", "route"},
                                                  {"HOST", "app.example.com"},
                                                  {"PATH", "/api"},
                                                  {"GWNAME", "gw"},
                                                  {"LSNNAME", "http"},
                                                  {"GWLISTENDOMAIN", "*.example.com"},
                                                  {"ROUTENAME", "r"},
                                                  {"ROUTEDOMAIN", "api.example.com"},
                                                  {"MATCHURI", "/m"},
                                                  {"MATCHHDR", "x-a"},
                                                  {"MATCHVAL", "1"},
                                                  {"QRYNAME", "v"},
                                                  {"QRYVAL", "2"},
                                                  {"SETHDR", "x-env"},
                                                  {"SETVAL", "lab"},
                                                  {"REWRITEURI", "/new"}};

std::string lab_with(const std::string& field, const std::string& value) {
  std::string text = kBase;
  // No placeholder is part of another's name.
  for (const auto& [name, good] : kGood) {
    const auto& with = name == field ? value : good;
    for (size_t at = text.find(name); at != std::string::npos;
         at = text.find(name, at + with.size()))
      text.replace(at, name.size(), with);
  }
  return text;
}

// The line of `field` in the base lab.
int line_of(const std::string& field) {
  std::istringstream in(kBase);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.find(field) != std::string::npos) return n;
  }
  return 0;
}

struct Sink {
  const char* name;
  std::vector<std::string> fields;
};

void expect_each_refused(const Sink& sink) {
  ASSERT_NO_THROW(parse_topology(lab_with("", ""), "lab.toml")) << "the base lab is valid";
  for (const auto& field : sink.fields)
    for (const auto& hostile : kHostile) {
      // A path keeps its leading '/', so that only the hostile part is judged.
      const std::set<std::string> paths = {"PATH", "MATCHURI", "REWRITEURI"};
      const std::set<std::string> values = {"MATCHVAL", "QRYNAME", "QRYVAL", "SETVAL"};
      const std::set<std::string> cased = {"LABELVALUE", "LABELKEY", "HEADER", "COOKIE",
                                           "OPTION",     "MATCHHDR", "SETHDR"};
      auto value = paths.count(field) ? "/" + hostile : hostile;
      if ((cased.count(field) || values.count(field)) && hostile == "A")
        continue;  // upper case is allowed there
      if (paths.count(field) && (hostile == "a/b" || hostile == "../x" || hostile == "A" ||
                                 hostile == "`id`" || hostile.size() > 1000))
        continue;  // a path may hold these: nginx gives them no meaning (and normalises "..")
      if (values.count(field) && (hostile == "a/b" || hostile == "../x" || hostile == "`id`"))
        continue;  // a header or query value may: it is quoted
      try {
        parse_topology(lab_with(field, value), "lab.toml");
        ADD_FAILURE() << sink.name << ": " << field << " = \"" << value.substr(0, 40)
                      << "\" was accepted";
      } catch (const UserError& e) {
        std::string what = e.what();
        EXPECT_EQ(what.rfind(fmt::format("lab.toml:{}:", line_of(field)), 0), 0u)
            << sink.name << ": " << field << ": " << what.substr(0, 300);
        EXPECT_LT(what.size(), 1000u) << field << " echoed whole";
      }
    }
}

TEST(HostileNames, NftablesAndIptablesScriptsTakeOnlyKubernetesNames) {
  // Chain names, set names and rule comments of kube-proxy and the policies.
  expect_each_refused({"nft/iptables",
                       {"NSNAME", "SVCNAME", "PORTNAME", "TARGETPORT", "CONTPORT", "POLICYNAME",
                        "DEPLOYNAME", "NODENAME", "LABELKEY", "LABELVALUE"}});
}

TEST(HostileNames, FilePathsTakeOnlyDnsLabels) {
  // /run/knetlab/LAB/pods/NS_POD/, images/IMAGE/, container logs, netns names.
  expect_each_refused(
      {"paths", {"LABNAME", "NSNAME", "DEPLOYNAME", "CONTAINERNAME", "IMAGENAME", "NODENAME"}});
}

TEST(HostileNames, NginxConfigurationTakesNoCharacterThatEndsADirective) {
  expect_each_refused({"nginx.conf",
                       {"INGRESSNAME", "HOST", "PATH", "HEADER", "COOKIE", "GWNAME", "LSNNAME",
                        "GWLISTENDOMAIN", "ROUTENAME", "ROUTEDOMAIN", "MATCHURI", "MATCHHDR",
                        "MATCHVAL", "QRYNAME", "QRYVAL", "SETHDR", "SETVAL", "REWRITEURI"}});
}

TEST(HostileNames, ResolvConfTakesNoBlankNorNewline) {
  expect_each_refused({"resolv.conf", {"SEARCH", "OPTION"}});
}

std::string refusal(const std::string& text) {
  try {
    parse_topology(text, "lab.toml");
  } catch (const UserError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(HostileFiles, DeepNestingIsRefusedAtItsLineBeforeTheTomlParserRecurses) {
  auto deep = "name = \"x\"\n[[nodes]]\nname = \"n\"\nargs = " + std::string(20000, '[') +
              std::string(20000, ']') + "\n";
  auto what = refusal(deep);
  EXPECT_EQ(what.rfind("lab.toml:4:72: arrays and tables nested more than 64 deep", 0), 0u) << what;
  EXPECT_LT(what.size(), 400u);
  // Brackets in strings and comments are not nesting.
  auto quoted = "name = \"x\" # " + std::string(100, '[') + "\n[[nodes]]\nname = \"n\"\n" +
                "[[hosts]]\nname = \"h\"\ndnsNames = [\"" + std::string(100, '{') + "\"]\n";
  EXPECT_NE(refusal(quoted).find("is not a domain name"), std::string::npos) << refusal(quoted);
}

TEST(HostileFiles, ASizeNoLabReachesADirectoryAndTomlErrorsAreSaidInTheUsersWords) {
  auto big = "name = \"" + std::string(kMaxTopologyBytes, 'a') + "\"\n";
  EXPECT_EQ(refusal(big),
            "lab.toml: larger than a topology file may be (8 MiB); is it the right "
            "file?");
  try {
    parse_topology_file("/");
    ADD_FAILURE() << "a directory was read";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "/: is a directory, not a topology file");
  }
  auto long_name = refusal("name = \"" + std::string(3000000, 'a') + "\"\n");
  EXPECT_LT(long_name.size(), 600u) << "a value is shown as an excerpt, its line as a window";
  EXPECT_NE(long_name.find("name \"aaaa"), std::string::npos);
  for (const auto& [text, said] : std::vector<std::pair<std::string, std::string>>{
           {"name = \"x\"\n= 3\n", "lab.toml:2:1: not valid TOML: a key is missing before '='"},
           {"name = \"x\"\nname = \"y\"\n", "not valid TOML: key \"name\" is given twice"},
           {"name = \"x\"\nx = { a = 1, }\n", "an inline table may not end with ','"},
           {"name = \"x\"\na b = 1\n", "expected a key (letters, digits"},
           {"name = \"x\"\nq = 1\n", "unknown key \"q\" at the top of the file"}}) {
    auto what = refusal(text);
    EXPECT_NE(what.find(said), std::string::npos) << what;
    EXPECT_EQ(what.find("toml::"), std::string::npos) << what;
  }
}

TEST(HostileFiles, ANamedTargetPortNoSelectedPodDeclaresIsAWarningWithAGuess) {
  auto t = parse_topology(R"~(name = "x"
[[nodes]]
name = "n"
[[deployments]]
name = "web"
labels = { app = "web" }
[[deployments.containers]]
name = "c"
image = "netexec"
ports = [{ name = "http", containerPort = 8080 }]
[[services]]
name = "web"
selector = { app = "web" }
ports = [{ port = 80, targetPort = "htttp" }]
)~",
                          "lab.toml");
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_EQ(t.warnings[0].where.line, 14u);
  EXPECT_NE(t.warnings[0].message.find("(did you mean \"http\"?)"), std::string::npos)
      << t.warnings[0].message;
}

// --- the fuzzer ---------------------------------------------------------

struct Run {
  int status = -1;  // exit status; -1: killed by a signal or timed out
  std::string output;
};

// `knetlab validate FILE`, stdout and stderr together, killed after 20 s.
Run validate(const std::string& file) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 1);
    dup2(pipe_fds[1], 2);
    close(pipe_fds[0]);
    alarm(20);
    execl(KNL_BINARY, KNL_BINARY, "validate", file.c_str(), nullptr);
    _exit(127);
  }
  close(pipe_fds[1]);
  Run run;
  char buffer[65536];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
    if (run.output.size() < (1u << 20)) run.output.append(buffer, static_cast<size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class Mutator {
 public:
  explicit Mutator(uint32_t seed) : rng_(seed) {}
  std::string mutate(const std::string& text) {
    std::string out = text;
    int rounds = 1 + pick(3);
    for (int i = 0; i < rounds && !out.empty(); ++i) {
      switch (pick(9)) {
        case 0:  // a byte flipped
          out[pick(out.size())] ^= static_cast<char>(1 << pick(8));
          break;
        case 1:  // truncated
          out.resize(pick(out.size()));
          break;
        case 2:  // a range deleted
          out.erase(pick(out.size()), 1 + pick(40));
          break;
        case 3:  // a line repeated
          repeat_line(out);
          break;
        case 4:  // a string's content replaced by a hostile one
          replace_quoted(out, kHostile[pick(kHostile.size())]);
          break;
        case 5:  // a number made huge, negative or zero
          replace_number(out);
          break;
        case 6:  // a value's type swapped
          replace_quoted(out, "\" = [1, { a = 2 }] #");
          break;
        case 7:  // deep nesting
          insert_at_line(out, "x = " + std::string(40 + pick(200), '[') + std::string(20, ']'));
          break;
        default:  // a character TOML gives meaning to
          out.insert(pick(out.size()), std::string(1, "[]{}=\",.#'\\\n"[pick(12)]));
      }
    }
    return out;
  }

 private:
  size_t pick(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  void repeat_line(std::string& s) {
    size_t at = s.rfind('\n', pick(s.size()));
    at = at == std::string::npos ? 0 : at + 1;
    s.insert(at, s.substr(at, s.find('\n', at) - at + 1));
  }
  void insert_at_line(std::string& s, const std::string& line) {
    size_t at = s.find('\n', pick(s.size()));
    s.insert(at == std::string::npos ? s.size() : at + 1, line + "\n");
  }
  void replace_quoted(std::string& s, const std::string& value) {
    size_t open = s.find('"', pick(s.size()));
    if (open == std::string::npos) return;
    size_t close = s.find('"', open + 1);
    if (close == std::string::npos || s.find('\n', open) < close) return;
    s.replace(open + 1, close - open - 1, value);
  }
  void replace_number(std::string& s) {
    static const std::vector<std::string> numbers = {
        "0", "-1", "99999999999", "2147483648", "-9223372036854775808", "65536", "1e9"};
    size_t at = s.find_first_of("0123456789", pick(s.size()));
    if (at == std::string::npos) return;
    size_t end = s.find_first_not_of("0123456789", at);
    s.replace(at, end - at, numbers[pick(numbers.size())]);
  }
  std::mt19937 rng_;
};

TEST(Fuzz, MutatedExampleLabsEndWithALocatedMessageNeverACrash) {
  std::vector<std::pair<std::string, std::string>> seeds;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(KNL_SOURCE_DIR) + "/topologies")) {
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    seeds.emplace_back(entry.path().filename().string(), text.str());
  }
  std::sort(seeds.begin(), seeds.end());
  ASSERT_FALSE(seeds.empty());
  // The seed is fixed so that CI sees the same cases each run.
  Mutator mutator(20261204);
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("knl-fuzz-{}", getpid());
  std::filesystem::create_directories(dir);
  const std::regex located("^error: [^:\\n]+\\.toml:[0-9]+:[0-9]+: ");
  int rejected = 0, accepted = 0;
  constexpr int kCases = 3000;
  for (int i = 0; i < kCases; ++i) {
    const auto& [name, text] = seeds[static_cast<size_t>(i) % seeds.size()];
    auto file = (dir / fmt::format("case{}.toml", i)).string();
    auto mutated = mutator.mutate(text);
    std::ofstream(file, std::ios::binary) << mutated;
    auto run = validate(file);
    bool ok = run.status == 0 || run.status == 1;
    EXPECT_TRUE(ok) << "case " << i << " (from " << name << ") ended with " << run.status
                    << "; the file is kept at " << file;
    EXPECT_LT(run.output.size(), 4096u) << "case " << i << ": " << run.output.substr(0, 500);
    if (run.status == 1) {
      ++rejected;
      EXPECT_TRUE(std::regex_search(run.output, located))
          << "case " << i << " (from " << name << "): " << run.output.substr(0, 500);
    } else if (run.status == 0) {
      ++accepted;
    }
    if (ok && !::testing::Test::HasFailure()) std::filesystem::remove(file);
  }
  EXPECT_GT(rejected, kCases / 2) << "the mutations should mostly break the files";
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
  RecordProperty("accepted", accepted);
  RecordProperty("rejected", rejected);
}

}  // namespace
}  // namespace knl
