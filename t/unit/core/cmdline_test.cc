#include "core/cmdline.h"

#include <gtest/gtest.h>

namespace speedmimi::core {
namespace {

TEST(CmdlineTest, SeedSpellingAndShortFormNameTheConfigFile) {
  for (const char* flag : {"-c", "-config"}) {
    Options o;
    std::string error;
    ASSERT_TRUE(parseCommandLine({flag, "conf/x.yaml"}, o, error)) << flag;
    EXPECT_EQ(o.config_file, "conf/x.yaml");
  }
}

TEST(CmdlineTest, FlagsAreRecognized) {
  Options o;
  std::string error;
  ASSERT_TRUE(parseCommandLine({"-t", "-d", "-p", "/var/lib/sm", "-s", "quit"}, o, error));
  EXPECT_TRUE(o.test_config);
  EXPECT_FALSE(o.dump_config);
  EXPECT_TRUE(o.daemonize);
  EXPECT_EQ(o.prefix, "/var/lib/sm");
  EXPECT_EQ(o.signal, "quit");
  EXPECT_FALSE(o.version);
  EXPECT_FALSE(o.help);
}

// -T tests the configuration like -t, then prints it.
TEST(CmdlineTest, DumpConfigImpliesTestConfig) {
  Options o;
  std::string error;
  ASSERT_TRUE(parseCommandLine({"-T", "-c", "conf/x.yaml"}, o, error));
  EXPECT_TRUE(o.test_config);
  EXPECT_TRUE(o.dump_config);
  EXPECT_EQ(o.config_file, "conf/x.yaml");
  Options both;
  ASSERT_TRUE(parseCommandLine({"-t", "-T"}, both, error));
  EXPECT_TRUE(both.test_config);
  EXPECT_TRUE(both.dump_config);
}

TEST(CmdlineTest, VersionAndHelp) {
  Options o;
  std::string error;
  ASSERT_TRUE(parseCommandLine({"-v", "-h"}, o, error));
  EXPECT_TRUE(o.version);
  EXPECT_TRUE(o.help);
}

TEST(CmdlineTest, ErrorsNameTheProblem) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  } cases[] = {
      {{"-c"}, "option \"-c\" requires an argument"},
      {{"-config"}, "option \"-config\" requires an argument"},
      {{"-x"}, "invalid option: \"-x\""},
      {{"-TT"}, "invalid option: \"-TT\""},
      {{"-s", "restart"}, "invalid option: \"-s restart\""},
      {{"config.yaml"}, "invalid option: \"config.yaml\""},
  };
  for (const Case& c : cases) {
    Options o;
    std::string error;
    EXPECT_FALSE(parseCommandLine(c.args, o, error));
    EXPECT_EQ(error, c.error);
  }
}

TEST(CmdlineTest, UsageMentionsEveryOption) {
  std::string usage = usageText();
  for (const char* opt : {"-c FILE", "-config FILE", "-p PREFIX", "-t", "-T", "-d", "-s SIGNAL",
                          "-v", "-h", "[-t] [-T]"}) {
    EXPECT_NE(usage.find(opt), std::string::npos) << opt;
  }
}

}  // namespace
}  // namespace speedmimi::core
