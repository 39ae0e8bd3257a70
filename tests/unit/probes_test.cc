// check's second try: a probe whose first answer is not the expected one is
// asked once more and its second answer kept; the others are asked once.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../../emulator/cli/probes.h"

namespace knl::cli {
namespace {

// The number of lines in `path`: how many times a call ran.
int runs(const std::filesystem::path& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

TEST(Probes, OnlyAnUnexpectedAnswerIsAskedAgainAndItsSecondAnswerKept) {
  auto dir = std::filesystem::temp_directory_path() / ("knl-probes-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  // Each call counts its runs in its own file: "steady" answers yes at once,
  // "late" no the first time and yes after, "wrong" no every time.
  auto call = [&](const std::string& name, const std::string& answers) {
    auto file = (dir / name).string();
    return ProgramCall{"",
                       {"sh", "-c",
                        "echo run >> " + file + "; set -- " + answers + "; shift $(($(wc -l < " +
                            file + ") - 1)); echo $1"},
                       ""};
  };
  std::vector<ProgramCall> calls = {call("steady", "yes yes"), call("late", "no yes"),
                                    call("wrong", "no no")};
  auto [results, asked_again] = run_probes_again(
      calls, 2, [](size_t, const ProgramResult& r) { return r.output == "yes\n"; });
  EXPECT_EQ(asked_again, 2u);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].output, "yes\n");
  EXPECT_EQ(results[1].output, "yes\n");
  EXPECT_EQ(results[2].output, "no\n");
  EXPECT_EQ(runs(dir / "steady"), 1);
  EXPECT_EQ(runs(dir / "late"), 2);
  EXPECT_EQ(runs(dir / "wrong"), 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace knl::cli
