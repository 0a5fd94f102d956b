// green::Channel<T>: a typed FIFO between fibers (and plain threads), Go's chan.
//
//   Channel<int> ch(16);     // bounded: send parks while 16 items are buffered
//   Channel<int> rv(0);      // unbuffered: send parks until a receiver takes the value
//   auto u = Channel<int>::unbounded();   // send never parks
//
//   ch.send(1);                      // throws green::ChannelClosed once closed
//   std::optional<int> v = ch.recv();   // nullopt once closed and drained
//   for (int x : ch) ...             // until closed and drained
//   ch.close();                      // wakes every receiver and sender
//
// Invariants (guarded by lock_): at most one of recvq_ and sendq_ is non-empty; if buf_ is
// non-empty then recvq_ is empty; if buf_.size() < cap_ then sendq_ is empty (for bounded
// channels). A sender parked on sendq_ owns its value until a receiver moves it out
// (then the sender is woken with kNotified) or the channel closes (kClosed, value untouched).
// A receiver parked on recvq_ is woken with kNotified only after the value was moved into its
// slot. Waiters re-take lock_ before returning (the lifetime rule in detail/wait.hpp).
// The fields are GREEN_GUARDED_BY(lock_); the library never instantiates Channel, so
// runtime/tsa/instantiations.cpp does, for clang's -Wthread-safety (scripts/test.sh --clang-tsa).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>

#include "green/detail/thread_annotations.hpp"
#include "green/detail/wait.hpp"
#include "green/errors.hpp"

namespace green {

enum class ChannelStatus { kOk, kEmpty, kFull, kTimeout, kClosed };

template <class T>
class Channel {
 public:
  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();

  explicit Channel(std::size_t capacity = 0) : cap_(capacity) {}
  static Channel unbounded() { return Channel(kUnbounded); }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Blocks until the value is buffered or taken by a receiver. Throws ChannelClosed (value
  // dropped), Cancelled or TimedOut (value dropped).
  void send(T value) {
    auto st = send_until(value, detail::kNoDeadline);
    if (st == ChannelStatus::kClosed) throw ChannelClosed();
  }
  // Non-blocking. On kFull/kClosed `value` is left untouched.
  ChannelStatus try_send(T& value) { return send_impl(value, detail::kNoDeadline, false); }
  ChannelStatus try_send(T&& value) { return send_impl(value, detail::kNoDeadline, false); }
  // kOk, kTimeout or kClosed. On failure `value` is left untouched.
  template <class Rep, class Period>
  ChannelStatus send_for(T& value, std::chrono::duration<Rep, Period> d) {
    return send_until(value, detail::deadline_after(d));
  }
  ChannelStatus send_until(T& value, std::chrono::steady_clock::time_point t) {
    return send_impl(value, t, true);
  }

  // Blocks until a value arrives; nullopt once the channel is closed and drained.
  std::optional<T> recv() {
    std::optional<T> out;
    recv_impl(out, detail::kNoDeadline, true);
    return out;
  }
  // kOk, kEmpty or kClosed.
  ChannelStatus try_recv(T& out) {
    std::optional<T> o;
    auto st = recv_impl(o, detail::kNoDeadline, false);
    if (st == ChannelStatus::kOk) out = std::move(*o);
    return st;
  }
  // kOk, kTimeout or kClosed.
  template <class Rep, class Period>
  ChannelStatus recv_for(T& out, std::chrono::duration<Rep, Period> d) {
    return recv_until(out, detail::deadline_after(d));
  }
  ChannelStatus recv_until(T& out, std::chrono::steady_clock::time_point t) {
    std::optional<T> o;
    auto st = recv_impl(o, t, true);
    if (st == ChannelStatus::kOk) out = std::move(*o);
    return st;
  }

  // Closes the channel: buffered values can still be received; every parked receiver and
  // sender wakes. Closing twice is harmless.
  void close() noexcept {
    lock_.lock();
    closed_ = true;
    while (auto* w = recvq_.pop_front()) detail::wake(w, detail::WakeReason::kClosed);
    while (auto* w = sendq_.pop_front()) detail::wake(w, detail::WakeReason::kClosed);
    lock_.unlock();
  }
  bool closed() const noexcept {
    lock_.lock();
    bool c = closed_;
    lock_.unlock();
    return c;
  }
  std::size_t size() const noexcept {
    lock_.lock();
    auto n = buf_.size();
    lock_.unlock();
    return n;
  }
  std::size_t capacity() const noexcept { return cap_; }

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Channel* c) : ch_(c) { ++*this; }
    T& operator*() { return *cur_; }
    iterator& operator++() {
      cur_ = ch_->recv();
      if (!cur_) ch_ = nullptr;
      return *this;
    }
    bool operator==(const iterator& o) const { return ch_ == o.ch_; }

   private:
    Channel* ch_ = nullptr;
    std::optional<T> cur_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  static ChannelStatus status_of(detail::WakeReason r) {
    switch (r) {
      case detail::WakeReason::kNotified:
        return ChannelStatus::kOk;
      case detail::WakeReason::kClosed:
        return ChannelStatus::kClosed;
      case detail::WakeReason::kTimeout:
        return ChannelStatus::kTimeout;
      default:
        detail::throw_if_interrupted(r);  // kCancelled / kDeadline
        return ChannelStatus::kTimeout;
    }
  }

  ChannelStatus send_impl(T& value, detail::TimePoint t, bool block) {
    lock_.lock();
    if (closed_) {
      lock_.unlock();
      return ChannelStatus::kClosed;
    }
    while (auto* w = recvq_.pop_front()) {  // a receiver is parked: hand over directly
      if (detail::wake(w, detail::WakeReason::kNotified)) {
        static_cast<std::optional<T>*>(w->slot)->emplace(std::move(value));
        lock_.unlock();
        return ChannelStatus::kOk;
      }
    }
    if (has_room()) {
      buf_.push_back(std::move(value));
      lock_.unlock();
      return ChannelStatus::kOk;
    }
    if (!block) {
      lock_.unlock();
      return ChannelStatus::kFull;
    }
    detail::Waiter w(detail::WaitKind::kChannelSend, this);
    w.slot = &value;
    return status_of(detail::wait_on(sendq_, lock_, w, t));
  }

  ChannelStatus recv_impl(std::optional<T>& out, detail::TimePoint t, bool block) {
    lock_.lock();
    if (!buf_.empty()) {
      out.emplace(std::move(buf_.front()));
      buf_.pop_front();
      // Room appeared: move the oldest parked sender's value into the buffer.
      while (auto* w = sendq_.pop_front()) {
        if (detail::wake(w, detail::WakeReason::kNotified)) {
          buf_.push_back(std::move(*static_cast<T*>(w->slot)));
          break;
        }
      }
      lock_.unlock();
      return ChannelStatus::kOk;
    }
    while (auto* w = sendq_.pop_front()) {  // unbuffered: take straight from a sender
      if (detail::wake(w, detail::WakeReason::kNotified)) {
        out.emplace(std::move(*static_cast<T*>(w->slot)));
        lock_.unlock();
        return ChannelStatus::kOk;
      }
    }
    if (closed_) {
      lock_.unlock();
      return ChannelStatus::kClosed;
    }
    if (!block) {
      lock_.unlock();
      return ChannelStatus::kEmpty;
    }
    detail::Waiter w(detail::WaitKind::kChannelRecv, this);
    w.slot = &out;
    // wait_on re-takes lock_ before returning: the sender fills our slot under lock_.
    return status_of(detail::wait_on(recvq_, lock_, w, t));
  }

  // buf_.size() < cap_, without computing a deque's size (a dozen instructions) when the answer
  // follows from cap_ alone: an unbuffered channel (every send's check) or an unbounded one.
  bool has_room() const GREEN_REQUIRES(lock_) {
    if (cap_ == 0) return false;
    return cap_ == kUnbounded || buf_.size() < cap_;
  }

  mutable detail::SpinLock lock_;
  const std::size_t cap_;
  bool closed_ GREEN_GUARDED_BY(lock_) = false;
  std::deque<T> buf_ GREEN_GUARDED_BY(lock_);
  detail::WaitList recvq_ GREEN_GUARDED_BY(lock_);
  detail::WaitList sendq_ GREEN_GUARDED_BY(lock_);
};

}  // namespace green
