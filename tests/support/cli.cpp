#include "support/cli.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>

#include "support/test_paths.h"

namespace quench::test {

CliResult run_cli(const std::string& args) {
    ScratchDir dir;
    const std::string cmd = std::string(QUENCH_CLI_PATH) + " " + args + " >" + dir.file("out") + " 2>" + dir.file("err");
    // fork + wait4 rather than std::system: wait4 gives this child's own resource use (the shell and the
    // quench-cli it waited for), where getrusage(RUSAGE_CHILDREN) would mix in every earlier child.
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int status = 0;
    struct rusage ru {};
    if (pid < 0) return {-1, "", "fork failed", 0};
    while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    auto slurp = [](const std::string& p) {
        std::ifstream in(p);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir.file("out")), slurp(dir.file("err")), ru.ru_maxrss};
}

}  // namespace quench::test
