// The robust process-shared mutex of the zone (core/shm.h): a holder that died is recovered
// from, and a mutex left unrecoverable is reported, never treated as taken.
#include "core/shm.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace speedmimi::core {
namespace {

// A robust mutex in a shared mapping, as the slab and the zone keep theirs.
class RobustMutexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(memory_.map(4096, error)) << error;
    mutex_ = static_cast<pthread_mutex_t*>(memory_.data());
    ASSERT_EQ(initRobustMutex(*mutex_), 0);
  }

  // A child process takes the mutex and exits holding it.
  void dieHoldingIt() {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(lockRobust(*mutex_) == 0 ? 0 : 1);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }

  SharedMemory memory_;
  pthread_mutex_t* mutex_ = nullptr;
};

TEST_F(RobustMutexTest, TakenAndReleased) {
  ASSERT_EQ(lockRobust(*mutex_), 0);
  EXPECT_EQ(pthread_mutex_unlock(mutex_), 0);
  ASSERT_EQ(lockRobust(*mutex_), 0);
  EXPECT_EQ(pthread_mutex_unlock(mutex_), 0);
}

// EOWNERDEAD: taken, made consistent, and usable again afterwards.
TEST_F(RobustMutexTest, AHolderThatDiedIsRecoveredFrom) {
  dieHoldingIt();
  ASSERT_EQ(lockRobust(*mutex_), 0);
  EXPECT_EQ(pthread_mutex_unlock(mutex_), 0);
  ASSERT_EQ(lockRobust(*mutex_), 0) << "not made consistent: the next lock fails";
  EXPECT_EQ(pthread_mutex_unlock(mutex_), 0);
}

// A holder died and the next one released it without pthread_mutex_consistent: every later
// lock fails with ENOTRECOVERABLE, and lockRobust says so instead of returning as if it held it.
TEST_F(RobustMutexTest, AnUnrecoverableMutexIsReportedNotTaken) {
  dieHoldingIt();
  ASSERT_EQ(pthread_mutex_lock(mutex_), EOWNERDEAD);
  ASSERT_EQ(pthread_mutex_unlock(mutex_), 0);  // without making it consistent
  EXPECT_EQ(lockRobust(*mutex_), ENOTRECOVERABLE);
  EXPECT_EQ(lockRobust(*mutex_), ENOTRECOVERABLE);
}

}  // namespace
}  // namespace speedmimi::core
