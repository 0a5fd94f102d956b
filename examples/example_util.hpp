// example_util.hpp: small helpers shared by the C++ examples (not part of green's API).
//
//   Flags      "--name value" / "--flag" command-line parsing with defaults and a usage line
//   Histogram  log-linear latency histogram (16 sub-buckets per power of two, ~6% precision),
//              cheap to keep one per fiber and merge at the end
//   LineReader buffered line reading over any stream with read(buf, n)
//   raise_nofile  lifts RLIMIT_NOFILE's soft limit towards the hard limit
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

namespace example {

class Flags {
 public:
  Flags(int argc, char** argv, std::string usage) : prog_(argv[0]), usage_(std::move(usage)) {
    for (int i = 1; i < argc; i++) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") fail("");
      if (a.rfind("--", 0) != 0) fail("unexpected argument '" + a + "'");
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        values_[a.substr(2, eq - 2)] = a.substr(eq + 1);
      } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        values_[a.substr(2)] = argv[++i];
      } else {
        values_[a.substr(2)] = "";
      }
    }
  }
  std::string str(const std::string& name, const std::string& def) {
    used_.insert(name);
    auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
  }
  long num(const std::string& name, long def) {
    auto s = str(name, "");
    if (s.empty()) return def;
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (*end) fail("--" + name + " expects an integer, got '" + s + "'");
    return v;
  }
  double real(const std::string& name, double def) {
    auto s = str(name, "");
    if (s.empty()) return def;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (*end) fail("--" + name + " expects a number, got '" + s + "'");
    return v;
  }
  bool flag(const std::string& name) {
    used_.insert(name);
    return values_.count(name) != 0;
  }
  // Call after reading every flag: rejects unknown ones.
  void done() {
    for (auto& [k, v] : values_)
      if (!used_.count(k)) fail("unknown flag --" + k);
  }
  [[noreturn]] void fail(const std::string& why) {
    if (!why.empty()) std::fprintf(stderr, "%s: %s\n", prog_.c_str(), why.c_str());
    std::fprintf(stderr, "usage: %s %s\n", prog_.c_str(), usage_.c_str());
    std::exit(2);
  }

 private:
  std::string prog_, usage_;
  std::map<std::string, std::string> values_;
  std::set<std::string> used_;
};

// Latency histogram over nanoseconds. Values below 16 ns are exact; above, each power of two
// is split into 16 buckets.
class Histogram {
 public:
  static constexpr int kSub = 16;
  static constexpr int kMaxExp = 42;  // up to ~73 minutes
  static constexpr int kBuckets = (kMaxExp - 3 + 1) * kSub;

  void add(std::uint64_t ns) {
    counts_[index(ns)]++;
    total_++;
    max_ = std::max(max_, ns);
  }
  void merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; i++) counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
  }
  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return max_; }
  // Value (ns) at quantile q in [0, 1]: the midpoint of the bucket holding it.
  double quantile(double q) const {
    if (total_ == 0) return 0;
    auto target = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    if (target == 0) target = 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; i++) {
      seen += counts_[i];
      if (seen >= target) {
        double lo = lower(i), hi = lower(i + 1);
        return std::min((lo + hi) / 2, static_cast<double>(max_));
      }
    }
    return static_cast<double>(max_);
  }

 private:
  static int index(std::uint64_t v) {
    if (v < kSub) return static_cast<int>(v);
    int e = 63 - std::countl_zero(v);  // >= 4
    if (e > kMaxExp) return kBuckets - 1;
    int sub = static_cast<int>((v >> (e - 4)) & (kSub - 1));
    return (e - 3) * kSub + sub;
  }
  static double lower(int i) {
    if (i < kSub) return i;
    int e = i / kSub + 3, sub = i % kSub;
    return std::ldexp(kSub + sub, e - 4);
  }
  std::array<std::uint32_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

// Buffered line reader over a stream whose read(buf, n) returns 0 at end of stream (e.g.
// green::net::TcpStream). Lines longer than `max_line` are an error (returns false).
template <class Stream>
class LineReader {
 public:
  explicit LineReader(Stream& s, std::size_t max_line = 65536) : s_(s), max_(max_line) {}
  // Fills `line` (without the '\n' or a trailing '\r'); false at end of stream.
  bool read_line(std::string& line) {
    for (;;) {
      auto nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        line.assign(buf_, pos_, nl - pos_);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        pos_ = nl + 1;
        return true;
      }
      if (buf_.size() - pos_ > max_) return false;
      buf_.erase(0, pos_);
      pos_ = 0;
      char tmp[4096];
      std::size_t n = s_.read(tmp, sizeof tmp);
      if (n == 0) return false;
      buf_.append(tmp, n);
    }
  }
  // True if a complete line is already buffered (the next read_line will not block).
  bool has_line() const { return buf_.find('\n', pos_) != std::string::npos; }

 private:
  Stream& s_;
  std::size_t max_;
  std::string buf_;
  std::size_t pos_ = 0;
};

// Raises the soft RLIMIT_NOFILE to at least `want` (capped by the hard limit); returns the
// resulting soft limit.
inline long raise_nofile(long want) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if (rl.rlim_cur != RLIM_INFINITY && static_cast<long>(rl.rlim_cur) < want) {
    rlim_t target = static_cast<rlim_t>(want);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < target) target = rl.rlim_max;
    rl.rlim_cur = target;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur == RLIM_INFINITY ? want : static_cast<long>(rl.rlim_cur);
}

// "850 us", "12.3 ms", "1.20 s"
inline std::string human_ns(double ns) {
  char b[64];
  if (ns < 1e3) {
    std::snprintf(b, sizeof b, "%.0f ns", ns);
  } else if (ns < 1e6) {
    std::snprintf(b, sizeof b, "%.0f us", ns / 1e3);
  } else if (ns < 1e9) {
    std::snprintf(b, sizeof b, "%.1f ms", ns / 1e6);
  } else {
    std::snprintf(b, sizeof b, "%.2f s", ns / 1e9);
  }
  return b;
}

}  // namespace example
