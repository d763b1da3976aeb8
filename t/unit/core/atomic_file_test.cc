#include "core/atomic_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace speedmimi::core {
namespace {

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/speedmimi-atomic-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::string cmd = "rm -rf " + dir_;
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  std::string read(const std::string& path) {
    std::string contents, error;
    EXPECT_TRUE(readWholeFile(path, contents, error)) << error;
    return contents;
  }
  std::string dir_;
};

TEST_F(AtomicFileTest, WritesNewFileAndReplacesOldOneKeepingABackup) {
  std::string path = dir_ + "/a.yaml", error;
  ASSERT_TRUE(writeFileAtomically(path, "one\n", error, path + ".bak")) << error;
  EXPECT_EQ(read(path), "one\n");
  EXPECT_NE(access((path + ".bak").c_str(), F_OK), 0);  // nothing to keep the first time
  ASSERT_TRUE(writeFileAtomically(path, "two\n", error, path + ".bak")) << error;
  EXPECT_EQ(read(path), "two\n");
  EXPECT_EQ(read(path + ".bak"), "one\n");
  ASSERT_TRUE(writeFileAtomically(path, "three\n", error, path + ".bak")) << error;
  EXPECT_EQ(read(path + ".bak"), "two\n");
}

TEST_F(AtomicFileTest, KeepsTheModeOfAnExistingFile) {
  std::string path = dir_ + "/state.json", error;
  ASSERT_TRUE(writeFileAtomically(path, "{}", error, "", 0600)) << error;
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  ASSERT_TRUE(writeFileAtomically(path, "{\"a\":1}", error)) << error;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(AtomicFileTest, AFailedWriteLeavesTheTargetAndNoTemporaryFile) {
  std::string error;
  EXPECT_FALSE(writeFileAtomically(dir_ + "/missing/dir/x", "data", error));
  EXPECT_NE(error.find(dir_ + "/missing/dir/x.tmp."), std::string::npos) << error;
  EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;
}

TEST_F(AtomicFileTest, ReadReportsAMissingFileApart) {
  std::string contents, error;
  bool missing = false;
  EXPECT_FALSE(readWholeFile(dir_ + "/none", contents, error, &missing));
  EXPECT_TRUE(missing);
  EXPECT_EQ(error, "");
  EXPECT_FALSE(readWholeFile(dir_ + "/none", contents, error));
  EXPECT_EQ(error, dir_ + "/none: cannot open: No such file or directory");
}

}  // namespace
}  // namespace speedmimi::core
