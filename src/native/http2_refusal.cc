// A prompt refusal for HTTP/2 clients with prior knowledge.
//
// The node speaks HTTP/1.1 and WebSocket on its port. A client that starts HTTP/2 without
// negotiating it ("prior knowledge", RFC 7540 section 3.4) opens with the 24-byte client
// connection preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n". uWebSockets.js's HTTP/1.1 parser takes
// that for the start of a request that has not finished arriving and waits for the rest, so the
// client hears nothing until the server's HTTP idle timeout (10 s) drops the connection. No
// JavaScript handler runs before that parser, so the refusal has to sit beneath it: this addon
// wraps the data handler of the app's socket context (uSockets' C API, which the uWebSockets.js
// binary exports) with one that answers the preface itself and passes every other read on.
//
//   refuse(listenSocket, uwsPath)   true when the handler of listenSocket's context is wrapped
//                                   (or already was); false when anything is not as expected,
//                                   with the context left as it was. listenSocket is what
//                                   app.listen's callback receives; uwsPath the uWebSockets.js
//                                   binary this process loaded.
//
// What a refused client gets is what RFC 7540 asks of a server that will not speak HTTP/2 on the
// connection: the server connection preface, an empty SETTINGS frame (sections 3.5 and 6.5), then
// a GOAWAY frame (section 6.8) that accepts no stream (last-stream-id 0) with the error code
// HTTP_1_1_REQUIRED (0xd, section 7) and a line of debug data; then the connection is closed
// (section 5.4.1).
//
// Unlike the node's other addons this one is written against V8's API, not Node-API: the listen
// socket is a V8 External that uWebSockets.js made itself, and Node 20's napi_get_value_external
// reads only the Externals that Node-API makes (each points to a record of Node-API's own, and it
// returns a field of that record), so for this one it answers a word of the socket, not its
// address. V8's External::Value answers the address. The price is that the addon is built for one
// Node.js major version (as uWebSockets.js's binary is): under another it does not load, and the
// node does without it.

#include <node.h>
#include <dlfcn.h>
#include <pthread.h>
#include <cstdint>
#include <cstring>

namespace {

struct us_socket_t;
struct us_socket_context_t;
using on_data_fn = us_socket_t *(*)(us_socket_t *s, char *data, int length);

// The uSockets functions used, resolved in the uWebSockets.js binary by the first refuse() (the
// binary is loaded RTLD_LOCAL, so its symbols are not in the process's global scope). The first
// argument of each is `ssl`: the node's apps are plain HTTP, so it is always 0.
struct {
  us_socket_context_t *(*context)(int ssl, us_socket_t *s);
  void (*on_data)(int ssl, us_socket_context_t *context, on_data_fn handler);
  int (*write)(int ssl, us_socket_t *s, const char *data, int length, int msg_more);
  void (*shutdown)(int ssl, us_socket_t *s);
  us_socket_t *(*close)(int ssl, us_socket_t *s, int code, void *reason);
} us;

// uWebSockets.js's own data handler for its HTTP contexts. Every App (one per I/O thread) gets
// the same function, so one copy serves every thread: the first hook keeps it, later ones check
// they found the same one.
on_data_fn original = nullptr;

// refuse() runs on each I/O thread, possibly at once; it changes `us` and `original` only under
// this lock, and each only once, before it installs the wrapper on its thread's context. The
// wrapper runs on the event loop of a thread that installed it, so after that thread took the
// lock: it reads both without one, and sees them set.
pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

constexpr char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr int PREFACE_LENGTH = sizeof PREFACE - 1;

constexpr char DEBUG_TEXT[] = "this node speaks HTTP/1.1 (ILP over HTTP, SPSP, the shop) and WebSocket (BTP), not HTTP/2";
constexpr int DEBUG_LENGTH = sizeof DEBUG_TEXT - 1;
static_assert(8 + DEBUG_LENGTH < 256, "the GOAWAY frame's length is written as one byte");

// The frames before the debug text. A frame header (section 4.1) is a 24-bit length, an 8-bit
// type, 8 bits of flags and a reserved bit with a 31-bit stream identifier; both frames belong to
// the connection (stream 0).
constexpr unsigned char FRAMES[] = {
  0, 0, 0, 0x4, 0, 0, 0, 0, 0,             // SETTINGS (type 0x4), no parameters
  0, 0, 8 + DEBUG_LENGTH, 0x7, 0, 0, 0, 0, 0, // GOAWAY (type 0x7), 8 bytes before the debug data
  0, 0, 0, 0,                              // last-stream-id 0: no stream was processed
  0, 0, 0, 0xd,                            // HTTP_1_1_REQUIRED
};

// Answers the preface and closes. uSockets writes what the kernel takes at once and drops the
// rest; a fresh connection's send buffer takes these hundred-odd bytes whole. The shutdown puts
// the FIN behind them; the close (code 0: orderly, not a reset) frees the socket, and
// uWebSockets.js hears of it through its own close handler as for any connection. The kernel
// still delivers the frames, unless the client sent more than this read held: closing with input
// unread makes it answer a reset, which can cost the client the frames (the reason for HTTP/1.1's
// "lingering close", RFC 7230 section 6.6). A client's preface and first frames normally arrive
// in one read.
us_socket_t *refuse_connection(us_socket_t *s) {
  us.write(0, s, reinterpret_cast<const char *>(FRAMES), sizeof FRAMES, 1);
  us.write(0, s, DEBUG_TEXT, DEBUG_LENGTH, 0);
  us.shutdown(0, s);
  return us.close(0, s, 0, nullptr);
}

// Runs on every read of every HTTP connection, ILP over HTTP's packets included: a length check
// and a compare, then uWebSockets.js's own handler as if nothing were in between.
us_socket_t *on_data(us_socket_t *s, char *data, int length) {
  if (length >= PREFACE_LENGTH && std::memcmp(data, PREFACE, PREFACE_LENGTH) == 0) return refuse_connection(s);
  return original(s, data, length);
}

// Stands in for a moment while refuse() looks for where the handler is kept; no read is
// dispatched while it is installed (the event loop is not running: this thread is in refuse()).
us_socket_t *sentinel(us_socket_t *s, char *, int) {
  return s;
}

template <typename F>
bool lookup(void *binary, const char *name, F *into) {
  *into = reinterpret_cast<F>(dlsym(binary, name));
  return *into != nullptr;
}

bool resolve(const char *path) {
  if (us.close != nullptr) return true;
  // Already loaded (RTLD_NOLOAD: this only finds it), and kept open: the wrappers call into it
  // for as long as the process runs.
  void *binary = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  return binary != nullptr && lookup(binary, "us_socket_context", &us.context) &&
         lookup(binary, "us_socket_context_on_data", &us.on_data) && lookup(binary, "us_socket_write", &us.write) &&
         lookup(binary, "us_socket_shutdown", &us.shutdown) &&
         // Last: its being set says that the others are.
         lookup(binary, "us_socket_close", &us.close);
}

// How much of the context is searched for the handler. uSockets keeps a context's callbacks
// among its first fields (about sixteen pointers in all), and the context's allocation goes on
// with the app's own data (uWebSockets.js's router and handlers), so this much is inside it.
constexpr int WINDOW_WORDS = 32;

enum class Found { yes, no, lost };

// Where `context` keeps its data handler, found without knowing the layout: install the sentinel
// and look for the one word of the first WINDOW_WORDS that changed, to the sentinel. yes: the
// handler that was there is in `handler`, the sentinel in its place. no: the words changed
// otherwise than that, and are put back as they were. lost: no word searched took the sentinel,
// so it went somewhere else and the handler cannot be put back. Some words searched are padding
// or fields not set yet: the store does not touch them, so each is compared with itself and its
// value does not matter (valgrind's memcheck still reports the comparison).
Found find_handler(us_socket_context_t *context, on_data_fn *handler) {
  uintptr_t before[WINDOW_WORDS], after[WINDOW_WORDS];
  std::memcpy(before, context, sizeof before);
  us.on_data(0, context, sentinel);
  std::memcpy(after, context, sizeof after);
  int changed = 0, at = -1;
  for (int i = 0; i < WINDOW_WORDS; i++) {
    if (before[i] == after[i]) continue;
    changed++;
    if (after[i] == reinterpret_cast<uintptr_t>(sentinel)) at = i;
  }
  if (at == -1) return Found::lost;
  if (changed != 1) {
    std::memcpy(static_cast<void *>(context), before, sizeof before);
    return Found::no;
  }
  *handler = reinterpret_cast<on_data_fn>(before[at]);
  return Found::yes;
}

// Installs the wrapper on `context`. no: its handler is back as it was, because it was not where
// it was looked for or not the one the other threads found. lost: it cannot be put back.
Found wrap(us_socket_context_t *context) {
  on_data_fn handler = nullptr;
  Found found = find_handler(context, &handler);
  if (found != Found::yes) return found;
  if (handler == on_data) {
    // This context was wrapped already.
    us.on_data(0, context, on_data);
    return Found::yes;
  }
  if (original != nullptr && original != handler) {
    us.on_data(0, context, handler);
    return Found::no;
  }
  original = handler;
  us.on_data(0, context, on_data);
  return Found::yes;
}

void refuse(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  if (args.Length() < 2 || !args[0]->IsExternal() || !args[1]->IsString()) {
    isolate->ThrowException(v8::Exception::TypeError(v8::String::NewFromUtf8Literal(
      isolate, "expected (a uWebSockets.js listen socket, the uWebSockets.js binary's path)")));
    return;
  }
  void *listen = args[0].As<v8::External>()->Value();
  v8::String::Utf8Value path(isolate, args[1]);
  Found found = Found::no;
  pthread_mutex_lock(&lock);
  if (listen != nullptr && *path != nullptr && resolve(*path)) {
    // A listen socket begins with the socket it listens on, and a socket knows its context.
    us_socket_context_t *context = us.context(0, static_cast<us_socket_t *>(listen));
    if (context != nullptr) found = wrap(context);
  }
  pthread_mutex_unlock(&lock);
  if (found == Found::lost) {
    isolate->ThrowException(v8::Exception::Error(v8::String::NewFromUtf8Literal(
      isolate, "uWebSockets.js's HTTP data handler was replaced where it could not be found or put back")));
    return;
  }
  args.GetReturnValue().Set(found == Found::yes);
}

}  // namespace

NODE_MODULE_INIT() {
  (void)module;
  (void)context;
  NODE_SET_METHOD(exports, "refuse", refuse);
}
