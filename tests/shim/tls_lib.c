/* A library with TLS, dlopen'ed by thread_identity.c after its threads exist (the default
 * -fPIC model: general-dynamic, so each thread's block is allocated on first access). */
static __thread int lib_tv = 11;
int* tls_lib_addr(void) { return &lib_tv; }
