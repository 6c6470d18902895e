#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include "CSystemShims.h"

int csys_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

#include <malloc.h>

void csys_allocator_map_large_blocks(size_t threshold) {
    mallopt(M_MMAP_THRESHOLD, (int)threshold);
}

void csys_allocator_release_free_memory(void) {
    malloc_trim(0);
}

int csys_accept4(int fd, int flags) {
    return accept4(fd, NULL, NULL, flags);
}

// MARK: - Child processes bound to this process's lifetime

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

struct csys_spawn_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    int out_fd;
    pid_t result;
    int error;
    int done;
};

static pthread_once_t csys_spawner_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t csys_spawner_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t csys_spawner_cond = PTHREAD_COND_INITIALIZER;
static struct csys_spawn_request *csys_spawner_pending = NULL;

/// Runs in the child between fork and exec: async-signal-safe calls only.
static void csys_exec_child(struct csys_spawn_request *r, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent may have died between fork and prctl.
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (r->out_fd >= 0) {
        dup2(r->out_fd, 1);
        dup2(r->out_fd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0 && devnull != 0) dup2(devnull, 0);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
    {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++) close((int)fd);
    }
    execve(r->path, r->argv, r->envp);
    _exit(127);
}

static void *csys_spawner_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&csys_spawner_lock);
    for (;;) {
        while (csys_spawner_pending == NULL) pthread_cond_wait(&csys_spawner_cond, &csys_spawner_lock);
        struct csys_spawn_request *r = csys_spawner_pending;
        csys_spawner_pending = NULL;
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid == 0) csys_exec_child(r, parent);
        r->result = pid;
        r->error = pid < 0 ? errno : 0;
        r->done = 1;
        pthread_cond_broadcast(&csys_spawner_cond);
    }
    return NULL;
}

static void csys_spawner_start(void) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&thread, &attr, csys_spawner_main, NULL);
    pthread_attr_destroy(&attr);
}

pid_t csys_spawn_bound_to_parent(const char *path, char *const argv[], char *const envp[], int out_fd) {
    pthread_once(&csys_spawner_once, csys_spawner_start);
    struct csys_spawn_request r = {path, argv, envp, out_fd, -1, 0, 0};
    pthread_mutex_lock(&csys_spawner_lock);
    while (csys_spawner_pending != NULL) pthread_cond_wait(&csys_spawner_cond, &csys_spawner_lock);
    csys_spawner_pending = &r;
    pthread_cond_broadcast(&csys_spawner_cond);
    while (!r.done) pthread_cond_wait(&csys_spawner_cond, &csys_spawner_lock);
    pthread_mutex_unlock(&csys_spawner_lock);
    if (r.result < 0) errno = r.error;
    return r.result;
}

// MARK: CRC-32C

#include <pthread.h>
#include <string.h>

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_table_once = PTHREAD_ONCE_INIT;

static void crc32c_make_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
        crc32c_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = crc32c_table[t - 1][i];
            crc32c_table[t][i] = crc32c_table[0][prev & 0xFF] ^ (prev >> 8);
        }
    }
}

uint32_t csys_crc32c_software(uint32_t crc, const void *bytes, size_t count) {
    pthread_once(&crc32c_table_once, crc32c_make_table);
    const uint8_t *p = bytes;
    uint32_t c = ~crc;
    while (count >= 8) {  // slicing by 8, little-endian word order as memcpy reads it
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c;
        c = crc32c_table[7][w & 0xFF] ^ crc32c_table[6][(w >> 8) & 0xFF] ^ crc32c_table[5][(w >> 16) & 0xFF]
            ^ crc32c_table[4][(w >> 24) & 0xFF] ^ crc32c_table[3][(w >> 32) & 0xFF]
            ^ crc32c_table[2][(w >> 40) & 0xFF] ^ crc32c_table[1][(w >> 48) & 0xFF] ^ crc32c_table[0][w >> 56];
        p += 8;
        count -= 8;
    }
    while (count--) c = crc32c_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t count) {
    const uint8_t *p = bytes;
    uint64_t c = ~crc;
    while (count >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        count -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (count--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
static int crc32c_hardware_available(void) { return __builtin_cpu_supports("sse4.2"); }
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t count) {
    const uint8_t *p = bytes;
    uint32_t c = ~crc;
    while (count >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __crc32cd(c, w);
        p += 8;
        count -= 8;
    }
    while (count--) c = __crc32cb(c, *p++);
    return ~c;
}
static int crc32c_hardware_available(void) { return 1; }
#else
static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t count) {
    return csys_crc32c_software(crc, bytes, count);
}
static int crc32c_hardware_available(void) { return 0; }
#endif

uint32_t csys_crc32c(uint32_t crc, const void *bytes, size_t count) {
    return crc32c_hardware_available() ? crc32c_hardware(crc, bytes, count) : csys_crc32c_software(crc, bytes, count);
}
