// green::net::resolve: getaddrinfo on libuv's thread pool (uv_getaddrinfo); the fiber parks
// until the callback, which runs on the same worker's loop. Like offload, the request lives
// on the fiber's stack, so an interrupted resolve cancels (or waits out) the request before
// it throws.
#include <netdb.h>
#include <uv.h>

#include <cstring>
#include <string>
#include <system_error>

#include "context.hpp"
#include "green/detail/hooks.hpp"
#include "green/net.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::net {

namespace {

class ResolveCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return gai_strerror(code); }
};

std::vector<Address> collect(const addrinfo* res) {
  std::vector<Address> out;
  for (const addrinfo* p = res; p; p = p->ai_next) {
    Address a;
    std::memcpy(&a.storage, p->ai_addr, p->ai_addrlen);
    a.length = p->ai_addrlen;
    out.push_back(a);
  }
  return out;
}

struct Lookup {
  uv_getaddrinfo_t req;
  int status = 0;
  addrinfo* res = nullptr;
  bool done = false;
  detail::Waiter* waiter = nullptr;
};

// uv_getaddrinfo reports UV_E* codes; map the common ones back to EAI_*.
int to_eai(int uv_status) {
  switch (uv_status) {
    case UV_EAI_NONAME:
      return EAI_NONAME;
    case UV_EAI_AGAIN:
      return EAI_AGAIN;
    case UV_EAI_FAIL:
      return EAI_FAIL;
    case UV_EAI_FAMILY:
      return EAI_FAMILY;
    case UV_EAI_MEMORY:
      return EAI_MEMORY;
    case UV_EAI_SERVICE:
      return EAI_SERVICE;
    case UV_EAI_SOCKTYPE:
      return EAI_SOCKTYPE;
    case UV_EAI_NODATA:
      return EAI_NODATA;
    default:
      return EAI_FAIL;
  }
}

}  // namespace

const std::error_category& resolve_category() noexcept {
  static ResolveCategory cat;
  return cat;
}

std::vector<Address> resolve(const std::string& host, const std::string& service, int socktype) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_ADDRCONFIG;
  const char* h = host.empty() ? nullptr : host.c_str();
  const char* s = service.empty() ? nullptr : service.c_str();
  detail::Worker* wk = detail::Worker::current();
  if (!wk || !detail::tls().task) {
    addrinfo* res = nullptr;
    int rc = getaddrinfo(h, s, &hints, &res);
    if (rc != 0) throw std::system_error(rc, resolve_category(), "green::net::resolve " + host);
    auto out = collect(res);
    freeaddrinfo(res);
    return out;
  }
  detail::PinToWorker pin(wk->running());  // as offload: the request is this loop's
  Lookup op;
  op.req.data = &op;
  int err;
  {
    detail::ShimBypass bypass;
    err = uv_getaddrinfo(
        wk->loop(), &op.req,
        [](uv_getaddrinfo_t* r, int status, addrinfo* res) {
          auto* o = static_cast<Lookup*>(r->data);
          o->status = status;
          o->res = res;
          o->done = true;
          if (o->waiter) detail::wake(o->waiter, detail::WakeReason::kNotified);
        },
        h, s, &hints);
  }
  if (err != 0) throw std::system_error(to_eai(err), resolve_category(), "green::net::resolve");
  detail::WakeReason interrupted = detail::WakeReason::kNotified;
  while (!op.done) {
    detail::Waiter w(detail::WaitKind::kResolve, &op);
    op.waiter = &w;
    auto r = detail::park(w, detail::kNoDeadline, {}, interrupted == detail::WakeReason::kNotified);
    op.waiter = nullptr;
    if (r == detail::WakeReason::kCancelled || r == detail::WakeReason::kDeadline) {
      interrupted = r;
      detail::ShimBypass bypass;
      uv_cancel(reinterpret_cast<uv_req_t*>(&op.req));
    }
  }
  if (op.res && (interrupted != detail::WakeReason::kNotified || op.status != 0)) {
    uv_freeaddrinfo(op.res);
    op.res = nullptr;
  }
  detail::throw_if_interrupted(interrupted);
  if (op.status != 0) {
    throw std::system_error(to_eai(op.status), resolve_category(), "green::net::resolve " + host);
  }
  auto out = collect(op.res);
  uv_freeaddrinfo(op.res);
  return out;
}

}  // namespace green::net
