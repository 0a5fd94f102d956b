// The parsers and limits of green's settings, shared by resolve_options (options.cpp: the
// GREEN_* variables and Options fields) and greenrun (shim/greenrun.cpp: its flags), so a
// value greenrun accepts is exactly one the runtime accepts. Header-only and free of
// dependencies: greenrun does not link libgreen. The accepted forms are listed in
// green/options.hpp.
#pragma once

#include <cstddef>
#include <string_view>

namespace green::detail {

inline constexpr std::size_t kMaxWorkers = 1024;
inline constexpr std::size_t kMinStackSize = 16 * 1024;
inline constexpr std::size_t kMaxStackSize = std::size_t(1) << 30;
inline constexpr unsigned long kMaxBlockedMs = 3'600'000;
inline constexpr unsigned long kMaxSliceMs = 60'000;
inline constexpr unsigned long kMaxThreads = 100'000;

// A size in bytes: decimal digits, optionally followed by K, M or G (binary units, either
// case) and an optional "iB"/"B" ("64K", "64KiB", "64kb"). False if malformed or overflowing.
inline bool parse_size(std::string_view text, std::size_t* out) noexcept {
  std::size_t i = 0;
  unsigned long long v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    unsigned d = static_cast<unsigned>(text[i] - '0');
    if (v > (~0ull - d) / 10) return false;
    v = v * 10 + d;
    ++i;
  }
  if (i == 0) return false;  // empty or not starting with a digit
  unsigned shift = 0;
  if (i < text.size()) {
    switch (text[i]) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      default:
        return false;
    }
    ++i;
    if (i < text.size() && (text[i] == 'i' || text[i] == 'I')) ++i;  // "KiB" style
    if (i < text.size() && (text[i] == 'b' || text[i] == 'B')) ++i;
  }
  if (i != text.size()) return false;
  if (shift && v > (~0ull >> shift)) return false;
  *out = static_cast<std::size_t>(v << shift);
  return true;
}

// A fiber stack size: parse_size within [kMinStackSize, kMaxStackSize].
inline bool parse_stack_size(std::string_view text, std::size_t* out) noexcept {
  std::size_t n = 0;
  if (!parse_size(text, &n) || n < kMinStackSize || n > kMaxStackSize) return false;
  *out = n;
  return true;
}

// A decimal integer in [min, max]: digits only (no sign, no blanks, no suffix).
inline bool parse_uint(std::string_view text, unsigned long min, unsigned long max,
                       unsigned long* out) noexcept {
  if (text.empty()) return false;
  unsigned long long v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > max) return false;  // also bounds v: no overflow
  }
  if (v < min) return false;
  *out = static_cast<unsigned long>(v);
  return true;
}

}  // namespace green::detail
