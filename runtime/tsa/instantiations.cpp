// Explicit instantiations of the library's templates that take locks, so that clang's
// -Wthread-safety checks their bodies (the analysis runs only on instantiated code, and
// libgreen itself instantiates none of them). scripts/test.sh --clang-tsa builds this TU
// (target green_tsa_check) next to libgreen; every build compiles it, so it also checks that
// every member of these templates compiles. Nothing here is linked anywhere.
#include <memory>
#include <string>

#include "green/channel.hpp"
#include "green/group.hpp"

// Every member of Channel<T>, for a trivially copyable and a move-only value type.
template class green::Channel<int>;
template class green::Channel<std::unique_ptr<std::string>>;

namespace green_tsa {

// Group::spawn is a member template: instantiate it through a use.
void group_spawn(green::Group& g, int* out) {
  g.spawn([out](int v) { *out = v; }, 1);
}

}  // namespace green_tsa
