/* Thread-specific data: per-thread values for many threads sharing keys, destructors run at
 * thread exit (pthread_exit and return) with the thread's value, a destructor that sets a
 * value again gets another round, key_delete/key_create. */
#include <pthread.h>
#include <stdatomic.h>

#include "shim_test.h"

#define N 200
static pthread_key_t g_key, g_key2;
static atomic_long g_destructed, g_sum, g_rounds;

static void dtor(void* v) {
  g_destructed++;
  g_sum += (long)v;
}
static void dtor2(void* v) {
  long n = (long)v;
  g_rounds++;
  if (n < 3) pthread_setspecific(g_key2, (void*)(n + 1));
}

static void* run(void* arg) {
  long id = (long)arg;
  CHECK(pthread_getspecific(g_key) == NULL);
  CHECK(pthread_setspecific(g_key, (void*)(id + 1)) == 0);
  usleep(1000 * (useconds_t)(id % 5));
  CHECK(pthread_getspecific(g_key) == (void*)(id + 1));
  if (id == 0) CHECK(pthread_setspecific(g_key2, (void*)1) == 0);
  if (id % 2) pthread_exit((void*)id);
  return (void*)id;
}

int main(void) {
  time_limit(60);
  CHECK(pthread_key_create(&g_key, dtor) == 0);
  CHECK(pthread_key_create(&g_key2, dtor2) == 0);
  CHECK(pthread_setspecific(g_key, (void*)12345) == 0);
  pthread_t t[N];
  for (long i = 0; i < N; ++i) CHECK(pthread_create(&t[i], NULL, run, (void*)i) == 0);
  for (long i = 0; i < N; ++i) {
    void* r;
    CHECK(pthread_join(t[i], &r) == 0);
    CHECK(r == (void*)i);
  }
  CHECK(g_destructed == N);
  CHECK(g_sum == (long)N * (N + 1) / 2);
  CHECK(g_rounds == 3);
  CHECK(pthread_getspecific(g_key) == (void*)12345);  /* main's value untouched */
  pthread_key_t k;
  CHECK(pthread_key_create(&k, NULL) == 0);
  CHECK(pthread_setspecific(k, (void*)7) == 0 && pthread_getspecific(k) == (void*)7);
  CHECK(pthread_key_delete(k) == 0);
  puts("keys: ok");
  return 0;
}
