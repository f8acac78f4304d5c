/* Notices that the process forked since a device was opened, without a system call on
 * the hot path: a page marked MADV_WIPEONFORK reads as zero in a child. Where that is
 * not available, the process id is compared instead. */
#ifndef ALLOY_CORE_FORK_GUARD_H
#define ALLOY_CORE_FORK_GUARD_H

typedef struct alloy__fork_guard {
    volatile unsigned char *page; /* nonzero byte 0 in the parent; NULL: use pid */
    long pid;
} alloy__fork_guard;

void alloy__fork_guard_init(alloy__fork_guard *g);
void alloy__fork_guard_fini(alloy__fork_guard *g);
/* 1 when this process is the one that called init. */
int alloy__fork_guard_same_process(const alloy__fork_guard *g);

#endif
