// The start time and liveness read from /proc/PID/stat, for a process whose
// name holds the characters that trip a naive parser.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "knetlab/runtime/runtime.h"

namespace knl {
namespace {

// Field 22 of /proc/PID/stat, counted from the end of the line: the fields
// after the command name are plain numbers and letters.
uint64_t start_time_counted_from_the_end(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::vector<std::string> fields(std::istream_iterator<std::string>{rest},
                                  std::istream_iterator<std::string>{});
  return std::stoull(fields.at(22 - 3));
}

TEST(ProcessStat, StartTimeAndLivenessOfAProcessNamedWithParenthesesAndSpaces) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::prctl(PR_SET_NAME, "x) 1 2 (y");
    char c = 1;
    [[maybe_unused]] auto n = ::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);

  const auto start = process_start_time(child);
  EXPECT_EQ(start, start_time_counted_from_the_end(child));
  EXPECT_GT(start, 0U);
  EXPECT_TRUE(process_alive({child, start}));
  EXPECT_FALSE(process_alive({child, start + 1})) << "another process with the same pid";

  ASSERT_EQ(::kill(child, SIGKILL), 0);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_FALSE(process_alive({child, start})) << "a zombie is not alive";
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  EXPECT_EQ(process_start_time(child), 0U);
  EXPECT_FALSE(process_alive({child, start}));
}

// A deploy killed before its journal names the mount template must not leave
// the template behind: it ends with the process that started it.
TEST(MountTemplate, EndsWithTheProcessThatStartedIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: a mount namespace";
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t deploy = ::fork();
  ASSERT_GE(deploy, 0);
  if (deploy == 0) {
    auto runtime = make_process_runtime({std::string(KNL_BINARY_DIR) + "/pause", "/usr/bin:/bin"});
    int pid = runtime->start_mount_template().pid;
    [[maybe_unused]] auto n = ::write(report[1], &pid, sizeof pid);
    ::pause();
    ::_exit(0);
  }
  ::close(report[1]);
  int template_pid = 0;
  ASSERT_EQ(::read(report[0], &template_pid, sizeof template_pid),
            static_cast<ssize_t>(sizeof template_pid));
  ::close(report[0]);
  ASSERT_EQ(::kill(template_pid, 0), 0) << "the template runs";
  ::kill(deploy, SIGKILL);
  ::waitpid(deploy, nullptr, 0);
  // The template is now an orphan until it dies; this process may not be its
  // reaper, so wait for it to leave or become a zombie.
  bool gone = false;
  for (int i = 0; i < 400 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(template_pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    gone = text.empty() || text[text.rfind(')') + 2] == 'Z';
    if (!gone) ::usleep(5000);
  }
  EXPECT_TRUE(gone) << "mount template " << template_pid << " outlived its deploy";
  if (!gone) ::kill(template_pid, SIGKILL);
}

}  // namespace
}  // namespace knl
