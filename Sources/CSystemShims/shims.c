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

int csys_accept4(int fd, int flags) {
    return accept4(fd, NULL, NULL, flags);
}
