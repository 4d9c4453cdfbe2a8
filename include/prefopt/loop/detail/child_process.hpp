// prefopt/loop/detail/child_process.hpp — run a command, stream lines to its stdin and read lines
// from its stdout, under a timeout.
//
// Hand-written over POSIX (posix_spawnp, pipes, poll) because the standard library has no process
// API and the library's dependencies (the standard library, Hana, nlohmann-json) bring none.
// The command runs without a shell (argv[0] looked up on PATH); its stderr is the caller's stderr.
// Both pipe ends the parent keeps are close-on-exec and closed when the exchange ends, so no
// descriptor leaks into other children or outlives the call; a child that is still running when
// the exchange ends (timeout, error, exception) is killed (SIGKILL) and reaped, so none is left a
// zombie. Writing to a child that closed its stdin gives EPIPE, never SIGPIPE: the signal is
// blocked in the calling thread while writing and a pending one is consumed.
#pragma once

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace prefopt::loop::detail {

// How the exchange with the child ended.
struct exchange_result {
  bool timed_out = false;
  bool early_eof = false;  // stdout closed before `want_lines` lines came
  int exit_code = 0;       // the exit status; 128 + n when killed by signal n
  std::string os_error;    // a system call failed (spawn, pipe, poll): what and why
};

class fd_guard {
public:
  explicit fd_guard(int fd = -1) : fd_(fd) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_;
};

// Blocks SIGPIPE in this thread for its lifetime; a SIGPIPE raised meanwhile is consumed.
class sigpipe_block {
public:
  sigpipe_block() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  sigpipe_block(const sigpipe_block&) = delete;
  sigpipe_block& operator=(const sigpipe_block&) = delete;
  ~sigpipe_block() {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

private:
  sigset_t pipe_{}, old_{};
};

inline int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Runs argv, writes `input` to its stdin (then closes it), and hands each stdout line (without its
// '\n') to on_line until `want_lines` lines came and stdout closed, the child exited, or `timeout`
// passed since the start. on_line may throw; the child is then killed and reaped.
inline exchange_result exchange(const std::vector<std::string>& argv, const std::string& input, std::size_t want_lines,
                                std::chrono::milliseconds timeout, const std::function<void(std::string&&)>& on_line) {
  exchange_result r;
  int in_fds[2], out_fds[2];
  if (::pipe2(in_fds, O_CLOEXEC) != 0) return r.os_error = std::string("pipe: ") + std::strerror(errno), r;
  fd_guard in_read(in_fds[0]), in_write(in_fds[1]);
  if (::pipe2(out_fds, O_CLOEXEC) != 0) return r.os_error = std::string("pipe: ") + std::strerror(errno), r;
  fd_guard out_read(out_fds[0]), out_write(out_fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_read.get(), 0);  // dup2 clears close-on-exec on 0 and 1
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);         // the child does not inherit a blocked SIGPIPE
  posix_spawnattr_setsigdefault(&attr, &defaults);  // nor an ignored one
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  in_read.reset(), out_write.reset();
  if (rc != 0) return r.os_error = std::string("cannot start: ") + std::strerror(rc), r;

  struct reaper {  // kills and reaps the child unless it was reaped
    pid_t pid;
    bool reaped = false;
    int status = 0;
    ~reaper() {
      if (reaped) return;
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
  } child{pid};

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  sigpipe_block no_sigpipe;
  std::size_t written = 0, lines = 0;
  std::string pending;
  bool out_open = true;
  if (input.empty()) in_write.reset();
  else ::fcntl(in_write.get(), F_SETFL, ::fcntl(in_write.get(), F_GETFL) | O_NONBLOCK);
  char buf[65536];
  while (out_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      return r;  // the reaper kills the child
    }
    pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {in_write.get(), POLLOUT, 0}};
    const nfds_t n = in_write.get() >= 0 ? 2 : 1;
    const int ready = ::poll(fds, n, int(std::min<long long>(left.count(), 1000)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return r.os_error = std::string("poll: ") + std::strerror(errno), r;
    }
    if (n == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t w = ::write(in_write.get(), input.data() + written, input.size() - written);
      if (w > 0) written += std::size_t(w);
      else if (w < 0 && errno != EAGAIN && errno != EINTR) in_write.reset();  // EPIPE: the child stopped reading
      if (written == input.size()) in_write.reset();
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t got = ::read(out_read.get(), buf, sizeof buf);
      if (got < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return r.os_error = std::string("read: ") + std::strerror(errno), r;
      }
      if (got == 0) {
        out_open = false;
        break;
      }
      pending.append(buf, std::size_t(got));
      for (std::size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        ++lines;
        on_line(std::move(line));
      }
    }
  }
  in_write.reset();
  if (!pending.empty()) ++lines, on_line(std::move(pending));  // a last line without '\n'
  // stdout is closed: wait for the exit, still under the deadline.
  for (;;) {
    const pid_t w = ::waitpid(pid, &child.status, WNOHANG);
    if (w == pid) {
      child.reaped = true;
      break;
    }
    if (w < 0 && errno != EINTR) return r.os_error = std::string("waitpid: ") + std::strerror(errno), r;
    if (std::chrono::steady_clock::now() >= deadline) {
      r.timed_out = true;
      return r;
    }
    ::usleep(1000);
  }
  r.exit_code = decode_status(child.status);
  r.early_eof = lines < want_lines;
  return r;
}

} // namespace prefopt::loop::detail
