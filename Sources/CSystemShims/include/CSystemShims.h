#ifndef GENESYS_INGEST_CSYSTEMSHIMS_H
#define GENESYS_INGEST_CSYSTEMSHIMS_H
// epoll / eventfd and socket helpers that Glibc's Swift module does not expose.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/types.h>

/// epoll_event is packed on x86_64; these accessors avoid Swift layout surprises.
static inline uint32_t csys_epoll_event_events(const struct epoll_event *e) { return e->events; }
static inline uint64_t csys_epoll_event_u64(const struct epoll_event *e) { return e->data.u64; }
int csys_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// accept4(2) without a peer address (accept4 needs _GNU_SOURCE, which Swift cannot set).
int csys_accept4(int fd, int flags);
/// Size of struct epoll_event (12 bytes on x86_64, packed).
static inline int csys_epoll_event_size(void) { return (int)sizeof(struct epoll_event); }

static const uint32_t CSYS_EPOLLIN = EPOLLIN;
static const uint32_t CSYS_EPOLLOUT = EPOLLOUT;
static const uint32_t CSYS_EPOLLERR = EPOLLERR;
static const uint32_t CSYS_EPOLLHUP = EPOLLHUP;
static const uint32_t CSYS_EPOLLRDHUP = EPOLLRDHUP;
static const uint32_t CSYS_EPOLLEXCLUSIVE = EPOLLEXCLUSIVE;
static const int CSYS_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
static const int CSYS_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
static const int CSYS_EPOLL_CTL_DEL = EPOLL_CTL_DEL;
static const int CSYS_EFD_NONBLOCK = EFD_NONBLOCK;
static const int CSYS_EFD_CLOEXEC = EFD_CLOEXEC;
static const int CSYS_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int CSYS_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int CSYS_MSG_NOSIGNAL = MSG_NOSIGNAL;
/// Starts `path` with `argv`/`envp` (NULL-terminated), stdout and stderr on `out_fd`, every
/// other descriptor closed, and PR_SET_PDEATHSIG(SIGKILL): the child dies with this process,
/// however it ends (a test run killed with SIGKILL leaves no broker or worker behind). The
/// fork happens on one dedicated thread that lives as long as the process (the death signal
/// follows the thread that forked). Returns the pid, or -1 with errno set.
pid_t csys_spawn_bound_to_parent(const char *path, char *const argv[], char *const envp[], int out_fd);
/// Large allocations (request bodies) are mapped and unmapped directly instead of growing the
/// heap: glibc otherwise raises its mmap threshold after the first free of a large block, and
/// a burst of large bodies then stays resident. Call once, early.
void csys_allocator_map_large_blocks(size_t threshold);
/// Returns free heap memory to the system (malloc_trim(0), every arena).
void csys_allocator_release_free_memory(void);
/// CRC-32C (Castagnoli) of `count` bytes, continuing from `crc` (0 to start; the result is
/// already finalised, so chunks chain: crc(a+b) = csys_crc32c(csys_crc32c(0, a), b)). Uses the
/// CPU's CRC32 instruction (x86-64 SSE4.2, checked at run time; ARMv8 CRC) and a sliced table
/// otherwise.
uint32_t csys_crc32c(uint32_t crc, const void *bytes, size_t count);
/// The table implementation alone (for tests that compare both paths).
uint32_t csys_crc32c_software(uint32_t crc, const void *bytes, size_t count);

#endif
