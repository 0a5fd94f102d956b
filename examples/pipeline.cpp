// pipeline: producer -> stage pools -> consumer over bounded channels (back-pressure).
//
// What it demonstrates: the producer-consumer and worker-pool patterns from concurrency
// guides, with Go-style channels. A producer emits numbered items into a bounded channel; a
// pool of "hash" fibers (CPU work) and a pool of "fetch" fibers (simulated I/O: a sleep, as a
// remote call would park the fiber) transform them; one consumer checks the results. Bounded
// channels are the back-pressure: when a stage falls behind, the stage before it parks in
// send() instead of piling up memory (the producer counts how often it had to wait). Each
// pool closes its output channel when its last worker is done (a WaitGroup), so shutdown
// flows down the pipeline with no sentinel values. The consumer verifies that every item
// arrived exactly once with the right value; the exit status says so.
//
// Flags: --items N (20000), --capacity N (channel capacity, 16), --hashers N (2),
// --fetchers N (32), --io-us N (simulated I/O per item, 200), --workers N (runtime workers).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "example_util.hpp"
#include "green/green.hpp"

namespace {

struct Item {
  std::uint64_t seq = 0;
  std::uint64_t value = 0;
};

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
std::uint64_t hash_stage(std::uint64_t v) {
  for (int i = 0; i < 200; i++) v = mix(v);  // some CPU work
  return v;
}
std::uint64_t fetch_stage(std::uint64_t v) {
  return v ^ 0xabcdef;
}

// Runs `n` fibers of `body`, then closes `out` once all of them returned.
template <class F, class Out>
void pool(long n, Out& out, F body) {
  auto wg = std::make_shared<green::WaitGroup>(n);
  for (long i = 0; i < n; i++) {
    green::spawn([wg, body] {
      body();
      wg->done();
    }).detach();
  }
  green::spawn([wg, &out] {
    wg->wait();
    out.close();
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  example::Flags flags(argc, argv,
                       "[--items N] [--capacity N] [--hashers N] [--fetchers N] [--io-us N] "
                       "[--workers N]");
  const long items = flags.num("items", 20000);
  const auto cap = static_cast<std::size_t>(flags.num("capacity", 16));
  const long hashers = flags.num("hashers", 2);
  const long fetchers = flags.num("fetchers", 32);
  const long io_us = flags.num("io-us", 200);
  green::Options opts;
  opts.workers = static_cast<std::size_t>(flags.num("workers", 0));
  flags.done();
  if (items <= 0 || hashers <= 0 || fetchers <= 0 || io_us < 0) flags.fail("bad arguments");

  return green::run(
      [&]() -> int {
        auto t0 = std::chrono::steady_clock::now();
        green::Channel<Item> raw(cap), hashed(cap), fetched(cap);
        std::atomic<long> producer_waits{0};

        green::spawn([&] {
          for (long i = 0; i < items; i++) {
            Item it{static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(i)};
            if (raw.try_send(it) == green::ChannelStatus::kFull) {
              producer_waits++;  // back-pressure: the hashers are behind
              raw.send(it);
            }
          }
          raw.close();
        }).detach();

        pool(hashers, hashed, [&] {
          for (Item it : raw) {
            it.value = hash_stage(it.value);
            hashed.send(it);
          }
        });
        pool(fetchers, fetched, [&] {
          for (Item it : hashed) {
            if (io_us) green::this_fiber::sleep_for(std::chrono::microseconds(io_us));
            it.value = fetch_stage(it.value);
            fetched.send(it);
          }
        });

        // The consumer: every item exactly once, with the right value.
        std::vector<std::uint8_t> seen(static_cast<std::size_t>(items), 0);
        long received = 0, duplicates = 0, wrong = 0, out_of_range = 0;
        for (const Item& it : fetched) {
          received++;
          if (it.seq >= seen.size()) {
            out_of_range++;
            continue;
          }
          if (seen[it.seq]++) duplicates++;
          if (it.value != fetch_stage(hash_stage(it.seq))) wrong++;
        }
        long missing = 0;
        for (auto s : seen) missing += s == 0;
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

        std::printf(
            "pipeline: %ld items through %ld hashers and %ld fetchers (capacity %zu) in "
            "%.3f s = %.0f items/s\n",
            items, hashers, fetchers, cap, secs, static_cast<double>(items) / secs);
        std::printf("  producer waited on a full channel %ld times (back-pressure)\n",
                    producer_waits.load());
        bool ok =
            received == items && duplicates == 0 && wrong == 0 && missing == 0 && out_of_range == 0;
        std::printf("  received %ld, missing %ld, duplicated %ld, wrong value %ld: %s\n", received,
                    missing, duplicates, wrong,
                    ok ? "every item delivered exactly once" : "FAILED");
        return ok ? 0 : 1;
      },
      opts);
}
