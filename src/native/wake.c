// Wake-ups between the node's threads without V8's Atomics.wait / Atomics.notify / waitAsync.
//
// V8 emulates those on every platform with one process-wide mutex and a condition variable per
// waiter, and resolves an Atomics.waitAsync by posting a task to the waiter's event loop. With
// several shards and I/O threads waking each other tens of thousands of times a second, the
// threads queue on that mutex (a futex sleep and wake of their own each time) and pay a task and
// a promise per wake-up. The kernel does this directly:
//
//   futexWait / futexWake   a shard sleeps on an Int32 cell of its doorbell (a SharedArrayBuffer);
//                           a producer wakes it. FUTEX_PRIVATE: every thread is in this process.
//   pipe / signal           an I/O thread cannot block: it watches the read end of a pipe in its
//                           event loop, and a producer writes one byte to the write end.
//
// Nothing here knows the doorbell protocol (src/ring/doorbell.ts says when to sleep and when to
// ring); these are the system calls, checked and nothing more.

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static napi_value number(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

// The Int32 cell `index` of an Int32Array over a SharedArrayBuffer, or NULL (with an exception).
static int32_t *cell(napi_env env, napi_value array, napi_value index) {
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  bool plain = true;
  if (napi_get_typedarray_info(env, array, &type, &length, &data, &buffer, &offset) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, NULL, "expected an Int32Array");
    return NULL;
  }
  // A futex on memory that another thread cannot see would never be woken. (Node-API has no test
  // for a SharedArrayBuffer; it answers false to napi_is_arraybuffer for one.)
  if (napi_is_arraybuffer(env, buffer, &plain) != napi_ok || plain) {
    napi_throw_type_error(env, NULL, "expected an Int32Array over a SharedArrayBuffer");
    return NULL;
  }
  uint32_t i;
  if (napi_get_value_uint32(env, index, &i) != napi_ok || i >= length) {
    napi_throw_range_error(env, NULL, "cell index out of range");
    return NULL;
  }
  return (int32_t *)data + i;
}

static bool args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "missing arguments");
    return false;
  }
  return true;
}

static bool fd_arg(napi_env env, napi_value v, int32_t *fd) {
  if (napi_get_value_int32(env, v, fd) != napi_ok || *fd < 0) {
    napi_throw_type_error(env, NULL, "expected a file descriptor");
    return false;
  }
  return true;
}

// futexWait(cells, index, expected, timeoutMs): 0 woken (or interrupted), 1 the cell no longer
// held `expected`, 2 timed out. The caller re-checks its rings in every case.
static napi_value futex_wait(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, 4, argv)) return NULL;
  int32_t *p = cell(env, argv[0], argv[1]);
  if (p == NULL) return NULL;
  int32_t expected;
  double timeout_ms;
  if (napi_get_value_int32(env, argv[2], &expected) != napi_ok || napi_get_value_double(env, argv[3], &timeout_ms) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected numbers");
    return NULL;
  }
  if (!(timeout_ms >= 0)) timeout_ms = 0;
  if (timeout_ms > 86400000.0) timeout_ms = 86400000.0;
  struct timespec ts;
  ts.tv_sec = (time_t)(timeout_ms / 1000.0);
  ts.tv_nsec = (long)((timeout_ms - (double)ts.tv_sec * 1000.0) * 1e6);
  if (syscall(SYS_futex, p, FUTEX_WAIT_PRIVATE, expected, &ts, NULL, 0) == 0) return number(env, 0);
  return number(env, errno == EAGAIN ? 1 : errno == ETIMEDOUT ? 2 : 0);
}

// futexWake(cells, index): wakes every thread waiting on the cell; returns how many.
static napi_value futex_wake(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, 2, argv)) return NULL;
  int32_t *p = cell(env, argv[0], argv[1]);
  if (p == NULL) return NULL;
  long woken = syscall(SYS_futex, p, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  return number(env, woken < 0 ? 0 : (int32_t)woken);
}

// pipe(): [readFd, writeFd], both non-blocking and closed on exec.
static napi_value make_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    napi_throw_error(env, NULL, "pipe2() failed");
    return NULL;
  }
  napi_value out;
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, number(env, fds[0]));
  napi_set_element(env, out, 1, number(env, fds[1]));
  return out;
}

// signal(fd): writes one byte. True also when the pipe is full: its reader has wake-ups pending.
static napi_value signal_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!args(env, info, 1, argv) || !fd_arg(env, argv[0], &fd)) return NULL;
  const char byte = 1;
  ssize_t n;
  do n = write(fd, &byte, 1); while (n < 0 && errno == EINTR);
  napi_value out;
  napi_get_boolean(env, n == 1 || errno == EAGAIN, &out);
  return out;
}

// dup(fd): a new descriptor for the same pipe end (an I/O thread owns its copy; see doorbell.ts).
static napi_value dup_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!args(env, info, 1, argv) || !fd_arg(env, argv[0], &fd)) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    napi_throw_error(env, NULL, "dup of a wake-up pipe failed");
    return NULL;
  }
  return number(env, copy);
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!args(env, info, 1, argv) || !fd_arg(env, argv[0], &fd)) return NULL;
  close(fd);
  return NULL;
}

// yield(): gives the CPU to another runnable thread, if this CPU has one (sched_yield).
static napi_value yield_cpu(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  sched_yield();
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor functions[] = {
    { "futexWait", NULL, futex_wait, NULL, NULL, NULL, napi_default, NULL },
    { "futexWake", NULL, futex_wake, NULL, NULL, NULL, napi_default, NULL },
    { "pipe", NULL, make_pipe, NULL, NULL, NULL, napi_default, NULL },
    { "signal", NULL, signal_fd, NULL, NULL, NULL, napi_default, NULL },
    { "dup", NULL, dup_fd, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL },
    { "yield", NULL, yield_cpu, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}
