// green::Deadline: a scoped deadline on the current task (see deadline.hpp). Only the task
// itself reads or writes its TaskState::deadline, so no synchronisation is needed.
#include "tls.hpp"
#include "green/deadline.hpp"

#include <algorithm>

#include "green/detail/hooks.hpp"
#include "green/detail/task.hpp"
#include "task_state.hpp"

namespace green {

Deadline::Deadline(std::chrono::steady_clock::time_point at)
    : at_(at), task_(detail::tls().task) {
  if (auto* t = static_cast<detail::Task*>(task_)) {
    detail::TaskState& s = detail::task_state(t);
    saved_ = s.deadline;
    saved_fired_ = s.deadline_fired;
    s.deadline = std::min(saved_, at);
  }
}

Deadline::~Deadline() {
  if (auto* t = static_cast<detail::Task*>(task_)) {
    detail::TaskState& s = detail::task_state(t);
    s.deadline = saved_;
    s.deadline_fired = saved_fired_;
  }
}

bool Deadline::expired() const { return std::chrono::steady_clock::now() >= at_; }

}  // namespace green
