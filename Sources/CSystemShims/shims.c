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
