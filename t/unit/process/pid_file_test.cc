// The pid file and its ".oldbin" twin of a binary upgrade.
#include "process/pid_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace speedmimi::process {
namespace {

class PidFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/speedmimi-pid-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/speedmimi.pid";
  }
  void TearDown() override {
    unlink(path_.c_str());
    unlink(oldbinPath(path_).c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_;
  std::string path_;
};

TEST_F(PidFile, WrittenAndReadBack) {
  std::string error;
  ASSERT_TRUE(writePidFile(path_, 4242, error)) << error;
  std::ifstream in(path_);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "4242\n");
  EXPECT_EQ(readPidFile(path_, error), 4242);
  EXPECT_NE(access((path_ + ".tmp").c_str(), F_OK), 0);  // no temporary left behind
}

TEST_F(PidFile, AMissingOrEmptyFileNamesThePathTried) {
  std::string error;
  EXPECT_EQ(readPidFile(path_, error), 0);
  EXPECT_EQ(error, "cannot read a pid from " + path_ + ": No such file or directory");
  std::ofstream(path_) << "not a pid\n";
  EXPECT_EQ(readPidFile(path_, error), 0);
  EXPECT_EQ(error, "cannot read a pid from " + path_ + ": it holds no process id");
}

TEST_F(PidFile, AnUnwritableDirectoryIsAnError) {
  std::string error;
  EXPECT_FALSE(writePidFile(dir_ + "/missing/speedmimi.pid", 1, error));
  EXPECT_NE(error.find(dir_ + "/missing/speedmimi.pid"), std::string::npos) << error;
}

TEST_F(PidFile, OldbinIsThePathWithASuffix) {
  EXPECT_EQ(oldbinPath("/run/speedmimi.pid"), "/run/speedmimi.pid.oldbin");
}

TEST_F(PidFile, RemovedOnlyWhileItStillNamesUs) {
  std::string error;
  ASSERT_TRUE(writePidFile(path_, 100, error));
  removePidFileIfOurs(path_, 200);  // a new master wrote its own: not ours to remove
  EXPECT_EQ(readPidFile(path_, error), 100);
  removePidFileIfOurs(path_, 100);
  EXPECT_NE(access(path_.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace speedmimi::process
