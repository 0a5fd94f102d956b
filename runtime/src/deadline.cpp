// green::Deadline: a scoped deadline on the current task (see deadline.hpp). Only the task
// itself reads or writes Task::deadline_, so no synchronisation is needed.
#include "tls.hpp"
#include "green/deadline.hpp"

#include <algorithm>

#include "green/detail/hooks.hpp"
#include "green/detail/task.hpp"

namespace green {

Deadline::Deadline(std::chrono::steady_clock::time_point at)
    : at_(at), task_(detail::tls().task) {
  if (auto* t = static_cast<detail::Task*>(task_)) {
    saved_ = t->deadline_;
    saved_fired_ = t->deadline_fired_;
    t->deadline_ = std::min(saved_, at);
  }
}

Deadline::~Deadline() {
  if (auto* t = static_cast<detail::Task*>(task_)) {
    t->deadline_ = saved_;
    t->deadline_fired_ = saved_fired_;
  }
}

bool Deadline::expired() const { return std::chrono::steady_clock::now() >= at_; }

}  // namespace green
