// green::Group (design note in group.hpp). members_ maps fiber id -> handle so cancel() can
// reach every running member; a member erases itself when it ends. spawn() holds mu_ while
// it inserts, so a member that ends at once still finds (and erases) its own entry.
#include "green/group.hpp"

namespace green {

void Group::member_done(std::uint64_t id, std::exception_ptr err) noexcept {
  bool cancel_others = false;
  {
    mu_.lock_uninterruptible();
    members_.erase(id);
    if (err && !first_error_) {
      first_error_ = err;
      cancel_others = !cancelled_;
      cancelled_ = true;
    }
    if (cancel_others) {
      for (auto& [mid, f] : members_) f.cancel();
    }
    mu_.unlock();
  }
  if (limit_) slots_.release();
  wg_.done();
}

void Group::cancel() {
  mu_.lock_uninterruptible();
  cancelled_ = true;
  for (auto& [id, f] : members_) f.cancel();
  mu_.unlock();
}

void Group::wait() {
  wg_.wait();
  mu_.lock_uninterruptible();
  std::exception_ptr err = std::exchange(first_error_, nullptr);
  mu_.unlock();
  if (err) std::rethrow_exception(err);
}

std::size_t Group::running() const {
  mu_.lock_uninterruptible();
  std::size_t n = members_.size();
  mu_.unlock();
  return n;
}

Group::~Group() {
  if (wg_.count() > 0) {
    cancel();
    wg_.wait_uninterruptible();  // even if we are cancelled: members reference our state
  }
}

}  // namespace green
