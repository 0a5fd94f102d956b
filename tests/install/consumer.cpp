// Out-of-tree consumer of an installed green: built by tests/install/check.sh once with
// find_package(green) (shared and static) and once with a pkg-config compile line.
#include <green/green.hpp>

#include <chrono>
#include <cstdio>

int main() {
  int sum = green::run([] {
    green::Channel<int> ch(4);
    auto producer = green::spawn([&ch] {
      for (int i = 1; i <= 3; ++i) {
        green::this_fiber::sleep_for(std::chrono::milliseconds(1));
        ch.send(i);
      }
      ch.close();
    });
    int total = 0;
    for (int v : ch) total += v;
    producer.join();
    return total;
  });
  std::printf("green %d.%d.%d consumer: sum=%d\n", GREEN_VERSION_MAJOR, GREEN_VERSION_MINOR,
              GREEN_VERSION_PATCH, sum);
  return sum == 6 ? 0 : 1;
}
