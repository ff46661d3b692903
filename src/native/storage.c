// Disk space the node's store can grow into without asking the filesystem for it.
//
// LMDB writes a new page at the end of its data file with pwrite; on a full disk that write fails,
// and lmdb 3.5's error path for it formats its message into a buffer too small for it, which has
// been seen to corrupt the heap and abort the process. So the node keeps its reserve allocated
// past the end of the data file instead: fallocate(FALLOC_FL_KEEP_SIZE) allocates the blocks
// without changing the file's size or content, so LMDB's later writes there find their blocks
// allocated, and the only call that meets a full disk is this one, which fails cleanly.
//
//   allocate(fd, offset, length)   0, or the errno of fallocate (ENOSPC when the disk is full,
//                                  EOPNOTSUPP on a filesystem without it)

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>

static napi_value allocate(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  double offset, length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_value_double(env, argv[1], &offset) != napi_ok || offset < 0 ||
      napi_get_value_double(env, argv[2], &length) != napi_ok || length <= 0) {
    napi_throw_type_error(env, NULL, "expected (fd, offset >= 0, length > 0)");
    return NULL;
  }
  int result = fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length) == 0 ? 0 : errno;
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor functions[] = {
    { "allocate", NULL, allocate, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}
