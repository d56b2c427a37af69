// sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET. It is sent from the daemon's
// own process (not a `systemd-notify` child) because with NotifyAccess=main systemd accepts
// messages from the main PID only.
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "napi_common.h"

namespace {

// Sends `state` ("READY=1\nSTATUS=…") to the socket at `path`: an absolute path, or "@name"
// for an abstract socket. Returns an empty string or what went wrong.
std::string sendNotify(const std::string& path, const std::string& state) {
  if (path.empty() || (path[0] != '/' && path[0] != '@')) return "NOTIFY_SOCKET must be an absolute path or @abstract";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return "NOTIFY_SOCKET path is too long";
  memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace: leading NUL, no terminator
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + strerror(errno);
  ssize_t sent;
  do {
    sent = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
  } while (sent < 0 && errno == EINTR);
  std::string error = sent < 0 ? std::string("sendto ") + path + ": " + strerror(errno)
                      : static_cast<size_t>(sent) != state.size() ? "short datagram" : "";
  close(fd);
  return error;
}

// sdNotify(socketPath, state): throws an Error naming the failure; the TypeScript side
// (daemon/system/sd-notify.ts) catches it, because a notification must never stop the daemon.
Napi::Value sdNotify(const Napi::CallbackInfo& info) {
  std::string path = napi_common::requireString(info, 0, "socket path");
  std::string state = napi_common::requireString(info, 1, "state");
  std::string error = sendNotify(path, state);
  if (!error.empty()) throw Napi::Error::New(info.Env(), error);
  return info.Env().Undefined();
}

}  // namespace

void registerSdNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New(env, sdNotify, "sdNotify"));
}
