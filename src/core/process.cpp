#include "core/process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace aero {

int run_process(const std::vector<std::string>& argv, const ProcessOptions& opts) {
  AERO_CHECK(!argv.empty(), "run_process: empty command");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = fork();
  AERO_CHECK(pid >= 0, "cannot start ", argv[0], ": fork failed: ", std::strerror(errno));
  if (pid == 0) {
    for (const auto& [k, v] : opts.env) setenv(k.c_str(), v.c_str(), 1);
    if (!opts.log_path.empty()) {
      const int fd = open(opts.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
    }
    execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    AERO_CHECK(errno == EINTR, "waitpid failed: ", std::strerror(errno));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

}  // namespace aero
