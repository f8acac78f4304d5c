#define _GNU_SOURCE
#include "fork_guard.h"

#include <sys/mman.h>
#include <unistd.h>

void alloy__fork_guard_init(alloy__fork_guard *g)
{
    g->pid = (long)getpid();
    g->page = NULL;
#if defined(MADV_WIPEONFORK)
    long pagesz = sysconf(_SC_PAGESIZE);
    if (pagesz <= 0)
        pagesz = 4096;
    void *p = mmap(NULL, (size_t)pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                   0);
    if (p == MAP_FAILED)
        return;
    if (madvise(p, (size_t)pagesz, MADV_WIPEONFORK) != 0) {
        munmap(p, (size_t)pagesz);
        return;
    }
    g->page = p;
    g->page[0] = 1;
#endif
}

void alloy__fork_guard_fini(alloy__fork_guard *g)
{
    if (g->page) {
        long pagesz = sysconf(_SC_PAGESIZE);
        munmap((void *)g->page, (size_t)(pagesz > 0 ? pagesz : 4096));
        g->page = NULL;
    }
}

int alloy__fork_guard_same_process(const alloy__fork_guard *g)
{
    if (g->page)
        return g->page[0] != 0;
    return (long)getpid() == g->pid;
}
