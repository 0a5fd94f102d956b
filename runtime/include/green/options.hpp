// Runtime configuration. Every field left at its zero value is taken from the matching
// GREEN_* environment variable, or else from the default. A malformed variable makes
// green::run throw std::invalid_argument whose message names the variable and what it
// accepts (the shim prints that message and exits with status 2).
//
//   field        env                 accepted                             default
//   workers      GREEN_WORKERS       integer 1..1024                      number of cores
//   stack_size   GREEN_STACK_SIZE    bytes, suffix K/M/G, 16K..1G         256K (virtual)
//   stack_guard  GREEN_STACK_GUARD   auto | always | never                auto
//
// stack_guard: `always` puts a PROT_NONE guard page under every stack and fails spawn with
// green::StackError when the kernel refuses (vm.max_map_count, ~32k guarded stacks at the
// default 65530); `auto` guards stacks while the map budget allows and then continues
// without guards (one warning on stderr), so a million fibers run out of the box;
// `never` omits guards.
#pragma once

#include <cstddef>
#include <string>

#include "green/export.hpp"

namespace green {

enum class StackGuard { kDefault = 0, kAuto, kAlways, kNever };

struct Options {
  std::size_t workers = 0;
  std::size_t stack_size = 0;
  StackGuard stack_guard = StackGuard::kDefault;
};

// Fills every defaulted field from the environment and the defaults. Throws
// std::invalid_argument naming the variable on a malformed GREEN_* value.
GREEN_API Options resolve_options(Options requested);

// Parses a size such as "65536", "256K", "1M" (binary units). Returns false if malformed.
GREEN_API bool parse_size(const std::string& text, std::size_t* out);

}  // namespace green
