// Options: resolve_options (environment, defaults, validation) and parse_size.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

// Sets (or unsets) one environment variable for the scope, restoring it afterwards.
class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~EnvVar() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  EnvVar(const EnvVar&) = delete;
  EnvVar& operator=(const EnvVar&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Every test starts from a clean GREEN_* environment.
class OptionsTest : public ::testing::Test {
 protected:
  EnvVar w_{"GREEN_WORKERS", nullptr};
  EnvVar s_{"GREEN_STACK_SIZE", nullptr};
  EnvVar g_{"GREEN_STACK_GUARD", nullptr};
};

// Returns the what() of the std::invalid_argument thrown by resolve_options, or fails.
std::string invalid_message(const green::Options& o = {}) {
  try {
    green::resolve_options(o);
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected std::invalid_argument, got another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "resolve_options did not throw";
  return {};
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST_F(OptionsTest, DefaultsWithEmptyEnvironment) {
  auto o = green::resolve_options({});
  std::size_t cores = std::thread::hardware_concurrency();
  if (cores == 0) cores = 1;
  EXPECT_EQ(o.workers, cores);
  EXPECT_EQ(o.stack_size, std::size_t{256} * 1024);
  EXPECT_EQ(o.stack_guard, green::StackGuard::kAuto);
}

TEST_F(OptionsTest, EnvironmentFillsDefaultedFields) {
  EnvVar w("GREEN_WORKERS", "3");
  EnvVar s("GREEN_STACK_SIZE", "64K");
  EnvVar g("GREEN_STACK_GUARD", "always");
  auto o = green::resolve_options({});
  EXPECT_EQ(o.workers, 3u);
  EXPECT_EQ(o.stack_size, 65536u);
  EXPECT_EQ(o.stack_guard, green::StackGuard::kAlways);
}

TEST_F(OptionsTest, StackGuardValues) {
  {
    EnvVar g("GREEN_STACK_GUARD", "never");
    EXPECT_EQ(green::resolve_options({}).stack_guard, green::StackGuard::kNever);
  }
  {
    EnvVar g("GREEN_STACK_GUARD", "auto");
    EXPECT_EQ(green::resolve_options({}).stack_guard, green::StackGuard::kAuto);
  }
}

TEST_F(OptionsTest, ExplicitFieldsWinOverEnvironment) {
  EnvVar w("GREEN_WORKERS", "3");
  EnvVar s("GREEN_STACK_SIZE", "64K");
  EnvVar g("GREEN_STACK_GUARD", "always");
  green::Options req;
  req.workers = 2;
  req.stack_size = 128 * 1024;
  req.stack_guard = green::StackGuard::kNever;
  auto o = green::resolve_options(req);
  EXPECT_EQ(o.workers, 2u);
  EXPECT_EQ(o.stack_size, 128u * 1024);
  EXPECT_EQ(o.stack_guard, green::StackGuard::kNever);
}

TEST_F(OptionsTest, WorkerBoundsAccepted) {
  {
    EnvVar w("GREEN_WORKERS", "1");
    EXPECT_EQ(green::resolve_options({}).workers, 1u);
  }
  {
    EnvVar w("GREEN_WORKERS", "1024");
    EXPECT_EQ(green::resolve_options({}).workers, 1024u);
  }
}

TEST_F(OptionsTest, BadWorkersThrowNamingVariableAndRange) {
  for (const char* bad : {"abc", "0", "99999", "1025", "-2", "", "4x"}) {
    SCOPED_TRACE(std::string("GREEN_WORKERS=") + bad);
    EnvVar w("GREEN_WORKERS", bad);
    if (*bad == '\0') {
      // An empty variable may reasonably mean "unset"; if it is rejected, it must be properly.
      try {
        green::resolve_options({});
      } catch (const std::invalid_argument& e) {
        EXPECT_TRUE(contains(e.what(), "GREEN_WORKERS")) << e.what();
      }
      continue;
    }
    std::string msg = invalid_message();
    EXPECT_TRUE(contains(msg, "GREEN_WORKERS")) << msg;
    EXPECT_TRUE(contains(msg, "1024")) << "message should name the accepted range: " << msg;
  }
}

TEST_F(OptionsTest, BadStackSizeThrowsNamingVariableAndAcceptedValues) {
  for (const char* bad : {"12Q", "1K", "abc", "2G", "16383", "K"}) {
    SCOPED_TRACE(std::string("GREEN_STACK_SIZE=") + bad);
    EnvVar s("GREEN_STACK_SIZE", bad);
    std::string msg = invalid_message();
    EXPECT_TRUE(contains(msg, "GREEN_STACK_SIZE")) << msg;
    EXPECT_TRUE(contains(msg, "16K") || contains(msg, "16384") || contains(msg, "16 K"))
        << "message should name the minimum: " << msg;
    EXPECT_TRUE(contains(msg, "1G") || contains(msg, "1073741824") || contains(msg, "1 G"))
        << "message should name the maximum: " << msg;
  }
}

TEST_F(OptionsTest, StackSizeBoundsAccepted) {
  {
    EnvVar s("GREEN_STACK_SIZE", "16K");
    EXPECT_EQ(green::resolve_options({}).stack_size, 16u * 1024);
  }
  {
    EnvVar s("GREEN_STACK_SIZE", "1G");
    EXPECT_EQ(green::resolve_options({}).stack_size, std::size_t{1} << 30);
  }
}

TEST_F(OptionsTest, BadStackGuardThrowsNamingVariableAndAcceptedValues) {
  for (const char* bad : {"maybe", "ALWAYS_", "1"}) {
    SCOPED_TRACE(std::string("GREEN_STACK_GUARD=") + bad);
    EnvVar g("GREEN_STACK_GUARD", bad);
    std::string msg = invalid_message();
    EXPECT_TRUE(contains(msg, "GREEN_STACK_GUARD")) << msg;
    EXPECT_TRUE(contains(msg, "auto")) << msg;
    EXPECT_TRUE(contains(msg, "always")) << msg;
    EXPECT_TRUE(contains(msg, "never")) << msg;
  }
}

TEST_F(OptionsTest, BadEnvironmentIgnoredWhenFieldIsExplicit) {
  // The variable is only consulted for defaulted fields.
  EnvVar w("GREEN_WORKERS", "abc");
  green::Options req;
  req.workers = 2;
  green::Options o;
  EXPECT_NO_THROW(o = green::resolve_options(req));
  EXPECT_EQ(o.workers, 2u);
}

TEST_F(OptionsTest, RunThrowsInvalidArgumentOnBadEnvironmentAndCanRunAfterwards) {
  {
    EnvVar w("GREEN_WORKERS", "abc");
    bool ran = false;
    try {
      green::run([&] {
        ran = true;
        return 0;
      });
      ADD_FAILURE() << "green::run accepted GREEN_WORKERS=abc";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), "GREEN_WORKERS")) << e.what();
    }
    EXPECT_FALSE(ran);
    EXPECT_FALSE(green::running());
  }
  int v = 0;
  green_test::run_green(1, [&] { v = 7; });
  EXPECT_EQ(v, 7);
}

TEST_F(OptionsTest, BadExplicitFieldsThrow) {
  green::Options many;
  many.workers = 1025;
  std::string msg = invalid_message(many);
  EXPECT_TRUE(contains(msg, "workers")) << msg;
  green::Options tiny;
  tiny.stack_size = 1024;
  msg = invalid_message(tiny);
  EXPECT_TRUE(contains(msg, "stack_size")) << msg;
  green::Options huge;
  huge.stack_size = std::size_t{2} << 30;
  msg = invalid_message(huge);
  EXPECT_TRUE(contains(msg, "stack_size")) << msg;
  // green::run rejects them the same way, before running anything.
  bool ran = false;
  EXPECT_THROW(green::run(
                   [&] {
                     ran = true;
                     return 0;
                   },
                   many),
               std::invalid_argument);
  EXPECT_FALSE(ran);
}

TEST(ParseSize, AcceptsPlainAndSuffixedSizes) {
  struct Case {
    const char* text;
    std::size_t want;
  } cases[] = {
      {"65536", 65536},         {"64K", 64 * 1024},
      {"1M", 1024 * 1024},      {"1G", std::size_t{1} << 30},
      {"256K", 256 * 1024},     {"64KiB", 64 * 1024},
      {"2mb", 2 * 1024 * 1024},
  };
  for (const auto& c : cases) {
    std::size_t out = 12345;
    EXPECT_TRUE(green::parse_size(c.text, &out)) << c.text;
    EXPECT_EQ(out, c.want) << c.text;
  }
}

TEST(ParseSize, RejectsMalformed) {
  for (const char* bad : {"", "12Q", "K", "abc", "-1", "1.5M", "64KK", "M1",
                          "99999999999999999999999", "18446744073709551615G"}) {
    std::size_t out = 777;
    EXPECT_FALSE(green::parse_size(bad, &out)) << "accepted \"" << bad << "\" as " << out;
  }
}

}  // namespace
