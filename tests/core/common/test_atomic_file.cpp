// AtomicFile: the final name only ever holds a complete file, whatever happens before commit().
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/error.h"
#include "support/files.h"
#include "support/test_paths.h"

using namespace quench;
using quench::test::entries;
using quench::test::read_bytes;
using quench::test::ScratchDir;

TEST(AtomicFile, CommitPublishesAndLeavesNoTemp) {
    ScratchDir dir;
    const std::string path = dir.file("out.bin");
    AtomicFile f(path);
    f.write("hello ", 6);
    f.write("world", 5);
    // Before commit only the hidden temporary exists.
    const auto during = entries(dir.path());
    ASSERT_EQ(during.size(), 1u);
    EXPECT_EQ(during[0].rfind(".out.bin.tmp-", 0), 0u) << during[0];
    f.commit();
    EXPECT_EQ(read_bytes(path), "hello world");
    EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"out.bin"}));
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);  // not mkstemp's 0600
}

TEST(AtomicFile, DestructorWithoutCommitRemovesTemp) {
    ScratchDir dir;
    {
        AtomicFile f(dir.file("out.bin"));
        f.write("partial", 7);
    }
    EXPECT_TRUE(entries(dir.path()).empty());
}

TEST(AtomicFile, ReplacesExistingFileOnlyOnCommit) {
    ScratchDir dir;
    const std::string path = dir.file("cfg.json");
    write_file_atomic(path, "old");
    ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
    AtomicFile f(path);
    f.write("new contents", 12);
    EXPECT_EQ(read_bytes(path), "old");
    f.commit();
    EXPECT_EQ(read_bytes(path), "new contents");
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u);  // the replaced file's mode is kept
}

TEST(AtomicFile, FailedWriteLeavesNoFileUnderFinalName) {
    ScratchDir dir;
    const std::string fresh = dir.file("fresh.bin"), existing = dir.file("existing.bin");
    write_file_atomic(existing, "keep me");
    // A file size limit makes write() fail with EFBIG after a partial write, like a full disk would.
    // It is per process, so the failing writes run in a child.
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::signal(SIGXFSZ, SIG_IGN);  // get the error code instead of being killed
        const rlimit lim{4096, 4096};
        ::setrlimit(RLIMIT_FSIZE, &lim);
        const std::string big(1 << 20, 'x');
        int failures = 0;
        for (const std::string& path : {fresh, existing}) {
            AtomicFile f(path);
            try {
                f.write(big.data(), big.size());
            } catch (const Error& e) {
                const std::string msg = e.what();
                if (msg.find(path) != std::string::npos && msg.find("File too large") != std::string::npos) ++failures;
            }
            // A caller that ignores the error must not be able to publish the truncated file.
            try {
                f.commit();
            } catch (const Error&) {
                ++failures;
            }
        }
        ::_exit(failures == 4 ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child: a write did not fail naming the path, or commit() was allowed";
    EXPECT_FALSE(std::filesystem::exists(fresh));
    EXPECT_EQ(read_bytes(existing), "keep me");
    EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"existing.bin"}));  // temporaries were removed
}

TEST(AtomicFile, CommitTwiceIsRefused) {
    ScratchDir dir;
    AtomicFile f(dir.file("out.bin"));
    f.commit();
    EXPECT_THROW(f.commit(), Error);
    EXPECT_THROW(f.write("x", 1), Error);
    EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"out.bin"}));
}

TEST(AtomicFile, MissingDirectoryNamesPath) {
    const std::string path = "/nonexistent-quench-dir/sub/out.bin";
    try {
        AtomicFile f(path);
        FAIL() << "opened a file in a missing directory";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
    }
}

TEST(AtomicFile, ReadOnlyDirectoryNamesPath) {
    ScratchDir dir;
    const std::string ro = dir.file("ro");
    std::filesystem::create_directory(ro);
    ASSERT_EQ(::chmod(ro.c_str(), 0555), 0);
    if (::access(ro.c_str(), W_OK) == 0) GTEST_SKIP() << "running with permission override (root)";
    const std::string path = ro + "/out.bin";
    try {
        AtomicFile f(path);
        FAIL() << "opened a file in a read-only directory";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
}
